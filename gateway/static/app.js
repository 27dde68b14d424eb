// voicefleet page: sign in, talk through the microphone, hear and read the replies.
//
// No build step and nothing fetched from elsewhere: this file, worklet.js and
// style.css are the whole page. The WebSocket protocol is the one every client
// speaks (see /v1/schema): a JSON "start", PCM16 16 kHz frames from the
// microphone (made by worklet.js), JSON events and binary reply audio back.
"use strict";

const CAPTURE_RATE = 16000;
const FRAME_MS = 40;
// Piper voices speak at 22,050 Hz: asking for that spares the TTS a resampling;
// Web Audio converts to the device rate itself.
const OUTPUT_RATE = 22050;
const PREBUFFER_S = 0.05; // reply audio scheduled this far ahead absorbs network jitter
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 8000;

// Stages of a turn, in the order it passes them (keys of audio_start.ts).
const STAGES = [
  ["speech_end", "End of speech"],
  ["eot", "End of turn"],
  ["transcript", "Transcript"],
  ["llm_first_token", "First token"],
  ["first_chunk", "First sentence"],
  ["tts_first_audio", "First audio (TTS)"],
  ["gateway_sent", "Sent"],
  ["client_first_audio", "Audio heard"],
];

const $ = (id) => document.getElementById(id);

// Exposed for tests and for the curious: counters of what went through the page.
const stats = { framesSent: 0, samplesSent: 0, audioFrames: 0, samplesScheduled: 0, turns: 0, latencyShown: 0 };
window.vf = { stats, sessionId: "", status: "offline", events: [], resumed: false };

const app = {
  config: { dev_signin: false, voices: [] },
  token: "",
  ws: null,
  ready: null,
  wantConnection: false,
  reconnectDelay: RECONNECT_FIRST_MS,
  reconnectTimer: 0,
  // Where the page is in its session, to resume it after a dropped connection: the session, the last
  // stream_id received, and the reply audio received since (see "start" in the README's protocol).
  resume: { sessionId: "", after: "", audioBytes: 0 },
  ctx: null,
  micStream: null,
  micNode: null,
  micOn: false,
  player: null,
  wakeWord: "hey_jarvis",
  turns: [],
  audioTurn: null, // the turn whose reply audio is arriving
  micBusy: false,
};

// ---------------------------------------------------------------- status

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
  window.vf.status = state;
}

function setHint(text, activity) {
  $("hint").textContent = text;
  if (activity) document.body.dataset.activity = activity;
}

function showNotice(text, kind = "info") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
  clearTimeout(showNotice.timer);
  if (text && kind === "info") showNotice.timer = setTimeout(() => (el.hidden = true), 6000);
}

function idleHint() {
  if (!app.micOn) return app.ws ? "Type, or press the microphone to talk." : "Press the microphone to start.";
  return $("wake").checked ? `Say “${app.wakeWord.replace(/_/g, " ")}” to wake me.` : "Listening. Just talk.";
}

// ---------------------------------------------------------------- sign-in

function storedToken() {
  return localStorage.getItem("vf.token") || sessionStorage.getItem("vf.token") || "";
}

function setToken(token, remember) {
  app.token = token.trim();
  localStorage.removeItem("vf.token");
  sessionStorage.removeItem("vf.token");
  (remember ? localStorage : sessionStorage).setItem("vf.token", app.token);
}

function showSignin(error = "") {
  $("signin").hidden = false;
  $("talk").hidden = true;
  $("signout").hidden = true;
  $("dev-form").hidden = !app.config.dev_signin;
  $("signin-error").textContent = error;
  setStatus("offline", "Signed out");
  $("token-input").focus();
}

function showTalk() {
  $("signin").hidden = true;
  $("talk").hidden = false;
  $("signout").hidden = false;
  setStatus("offline", "Not connected");
  setHint(idleHint(), "idle");
}

async function devSignin(name) {
  const res = await fetch("/v1/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub: name }),
  });
  if (!res.ok) throw new Error(res.status === 403 ? "Development sign-in is off on this server." : `Sign-in failed (HTTP ${res.status}).`);
  return (await res.json()).token;
}

function signOut() {
  disconnect();
  stopMic();
  localStorage.removeItem("vf.token");
  sessionStorage.removeItem("vf.token");
  app.token = "";
  app.turns = [];
  $("log").replaceChildren(); // the conversation is not left on screen for the next person
  showSignin();
}

// ---------------------------------------------------------------- audio out

class Player {
  // Schedules reply audio back to back on the AudioContext clock; flush() stops it at once.
  constructor(ctx, onState) {
    this.ctx = ctx;
    this.onState = onState;
    this.gain = ctx.createGain();
    this.gain.connect(ctx.destination);
    this.sources = new Set();
    this.nextTime = 0;
    this.rate = OUTPUT_RATE;
    this.ended = true;
    this.playing = false;
  }

  begin(rate) {
    this.rate = rate;
    this.ended = false;
  }

  // Returns the wall-clock time (s) at which this piece will be heard.
  push(arrayBuffer) {
    const pcm = new Int16Array(arrayBuffer);
    if (pcm.length === 0) return null;
    const buffer = this.ctx.createBuffer(1, pcm.length, this.rate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(this.gain);
    const now = this.ctx.currentTime;
    if (this.nextTime < now + 0.01) this.nextTime = now + PREBUFFER_S;
    const at = this.nextTime;
    src.start(at);
    this.nextTime += buffer.duration;
    this.sources.add(src);
    src.onended = () => {
      this.sources.delete(src);
      this.settle();
    };
    stats.samplesScheduled += pcm.length;
    if (!this.playing) {
      this.playing = true;
      this.onState(true);
    }
    return Date.now() / 1000 + (at - now);
  }

  end() {
    this.ended = true;
    this.settle();
  }

  settle() {
    if (this.playing && this.ended && this.sources.size === 0) {
      this.playing = false;
      this.onState(false);
    }
  }

  flush() {
    for (const src of this.sources) {
      src.onended = null;
      try { src.stop(); } catch (_) { /* never started */ }
    }
    this.sources.clear();
    this.nextTime = 0;
    this.ended = true;
    if (this.playing) {
      this.playing = false;
      this.onState(false);
    }
  }
}

function onPlaybackState(playing) {
  send({ type: playing ? "playback_started" : "playback_finished" });
  $("stop").hidden = !playing;
  if (playing) setHint("Speaking…", "speaking");
  else if (document.body.dataset.activity === "speaking") setHint(idleHint(), "idle");
}

// ---------------------------------------------------------------- audio in

async function ensureAudio() {
  if (!app.ctx) {
    app.ctx = new AudioContext({ latencyHint: "interactive" });
    app.player = new Player(app.ctx, onPlaybackState);
  }
  if (app.ctx.state === "suspended") await app.ctx.resume();
}

async function startMic() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser cannot use a microphone here (it needs HTTPS or localhost).");
  }
  app.micStream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  await app.ctx.audioWorklet.addModule("/static/worklet.js");
  const source = app.ctx.createMediaStreamSource(app.micStream);
  app.micNode = new AudioWorkletNode(app.ctx, "pcm16-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    channelCount: 1,
    channelCountMode: "explicit",
    processorOptions: { targetRate: CAPTURE_RATE, frameMs: FRAME_MS },
  });
  app.micNode.port.onmessage = (e) => onMicFrame(e.data.pcm, e.data.level);
  source.connect(app.micNode);
  app.micOn = true;
}

function stopMic() {
  if (app.micStream) app.micStream.getTracks().forEach((t) => t.stop());
  if (app.micNode) app.micNode.port.onmessage = null;
  app.micStream = null;
  app.micNode = null;
  app.micOn = false;
  document.documentElement.style.setProperty("--level", "0");
}

function onMicFrame(pcm, level) {
  document.documentElement.style.setProperty("--level", Math.min(1, level * 6).toFixed(3));
  if (!app.micOn || !app.ready || !app.ws || app.ws.readyState !== WebSocket.OPEN) return;
  app.ws.send(pcm);
  stats.framesSent += 1;
  stats.samplesSent += pcm.byteLength / 2;
}

function renderMic() {
  const mic = $("mic");
  mic.setAttribute("aria-pressed", String(app.micOn));
  $("mic-label").textContent = app.micOn ? "Turn the microphone off" : "Turn the microphone on";
  mic.title = app.micOn ? "Microphone on: press to turn it off" : "Press to talk";
  mic.dataset.on = String(app.micOn);
}

async function toggleMic() {
  if (app.micBusy) return; // a second click while the browser asks for the microphone
  app.micBusy = true;
  try {
    await ensureAudio();
    if (app.micOn) {
      stopMic();
    } else {
      try {
        await startMic();
      } catch (err) {
        showNotice(`Microphone unavailable (${err.message || err.name}). You can still type.`, "error");
      }
    }
    renderMic();
    if (!app.ws) connect();
    else setHint(idleHint(), "idle");
  } catch (err) {
    showNotice(`Audio could not start: ${err.message || err}`, "error");
  } finally {
    app.micBusy = false;
  }
}

// ---------------------------------------------------------------- connection

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/ws/audio?token=${encodeURIComponent(app.token)}`;
}

function send(msg) {
  if (app.ws && app.ws.readyState === WebSocket.OPEN && app.ready) app.ws.send(JSON.stringify(msg));
}

function connect() {
  clearTimeout(app.reconnectTimer);
  app.wantConnection = true;
  setStatus("connecting", "Connecting…");
  const ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  app.ws = ws;
  app.ready = null;
  ws.onopen = () => {
    const start = {
      type: "start",
      sample_rate: CAPTURE_RATE,
      output_sample_rate: OUTPUT_RATE,
      wake_word: $("wake").checked ? app.wakeWord : "",
      voice: $("voice").value || null,
      // The microphone is opened with the browser's echoCancellation: the server need not cancel it again.
      echo_cancelled: true,
    };
    if (app.resume.sessionId) {
      Object.assign(start, {
        resume_session_id: app.resume.sessionId,
        resume_after: app.resume.after || null,
        resume_audio_bytes: app.resume.audioBytes,
      });
    }
    ws.send(JSON.stringify(start));
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      let event;
      try { event = JSON.parse(e.data); } catch (_) { return; }
      if (event.stream_id && event.type !== "ready") {
        app.resume.after = event.stream_id;
        app.resume.audioBytes = 0;
      }
      onEvent(event);
    } else {
      app.resume.audioBytes += e.data.byteLength;
      onAudio(e.data);
    }
  };
  ws.onclose = (e) => {
    if (app.ws !== ws) return;
    const wasReady = Boolean(app.ready);
    app.ws = null;
    app.ready = null;
    window.vf.sessionId = "";
    // A drop is resumed (the rest of the reply follows): keep playing what already arrived.
    if (app.player && !(wasReady && app.wantConnection)) app.player.flush();
    if (e.code === 1008 && !wasReady) {
      app.resume = { sessionId: "", after: "", audioBytes: 0 };
      // The token was refused: retrying cannot help.
      app.wantConnection = false;
      localStorage.removeItem("vf.token");
      sessionStorage.removeItem("vf.token");
      stopMic();
      renderMic();
      showSignin(`The server refused the token: ${e.reason || "no reason given"}.`);
      return;
    }
    if (!app.wantConnection) {
      setStatus("offline", "Not connected");
      return;
    }
    const delay = app.reconnectDelay;
    app.reconnectDelay = Math.min(RECONNECT_MAX_MS, app.reconnectDelay * 2);
    setStatus("reconnecting", `Reconnecting in ${Math.round(delay / 1000) || 1} s…`);
    app.reconnectTimer = setTimeout(connect, delay * (0.8 + Math.random() * 0.4));
  };
}

// For tests: lose the connection as a network failure would (no "stop"); the page comes back by itself.
window.vf.drop = () => { if (app.ws) app.ws.close(4000, "dropped"); };

function disconnect() {
  app.wantConnection = false;
  app.resume = { sessionId: "", after: "", audioBytes: 0 };
  clearTimeout(app.reconnectTimer);
  if (app.ws) {
    try { app.ws.send(JSON.stringify({ type: "stop" })); } catch (_) { /* closing anyway */ }
    app.ws.close(1000);
  }
  app.ws = null;
  app.ready = null;
}

// ---------------------------------------------------------------- turns

function newTurn(id = "") {
  const node = $("turn-template").content.firstElementChild.cloneNode(true);
  $("log").appendChild(node);
  const turn = { id, node, closed: false, final: false, ts: null, typedAt: 0, heardAt: 0, reply: "" };
  app.turns.push(turn);
  stats.turns = app.turns.length;
  return turn;
}

// The turn an event belongs to. With an id: that turn, else the open turn that has no
// id yet. Without one (speech, partials): the open turn still waiting for its words;
// speech over a reply (barge-in) starts a new turn.
function turnFor(id) {
  const last = app.turns[app.turns.length - 1];
  if (id) {
    const known = app.turns.find((t) => t.id === id);
    if (known) return known;
    if (last && !last.closed && !last.id) {
      last.id = id;
      return last;
    }
    return newTurn(id);
  }
  if (last && !last.closed && !last.final && !last.reply) return last;
  return newTurn();
}

function userText(turn, text, partial) {
  const bubble = turn.node.querySelector(".user");
  bubble.hidden = !text;
  bubble.classList.toggle("partial", partial);
  bubble.querySelector(".text").textContent = text;
  scrollDown();
}

function assistant(turn) {
  const bubble = turn.node.querySelector(".assistant");
  bubble.hidden = false;
  return bubble;
}

function scrollDown() {
  const log = $("log");
  const last = log.lastElementChild;
  if (last) last.scrollIntoView({ block: "end", behavior: "smooth" });
}

function toolActivity(turn, ev) {
  const list = assistant(turn).querySelector(".tools");
  let item = list.querySelector(`[data-call="${CSS.escape(ev.call_id || ev.name)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.call = ev.call_id || ev.name;
    list.appendChild(item);
  }
  const name = (ev.name || "tool").replace(/_/g, " ");
  if (ev.type === "tool_call") {
    item.className = "tool running";
    item.textContent = `${name}…`;
  } else {
    item.className = `tool ${ev.ok ? "ok" : "failed"}`;
    item.textContent = `${name} ${ev.ok ? "✓" : "✕"}`;
    if (ev.text) item.title = ev.text;
  }
}

function renderLatency(turn) {
  if (!turn.ts) return;
  const ts = Object.assign({}, turn.ts);
  if (turn.heardAt) ts.client_first_audio = turn.heardAt;
  const origin = ts.speech_end || (turn.typedAt || ts.eot);
  if (!origin) return;
  const rows = STAGES.filter(([key]) => typeof ts[key] === "number").map(([key, label]) => ({
    key, label, ms: Math.max(0, (ts[key] - origin) * 1000),
  }));
  if (rows.length === 0) return;
  const total = Math.max(1, ...rows.map((r) => r.ms));
  const figure = assistant(turn).querySelector(".latency");
  const grid = figure.querySelector(".waterfall");
  grid.replaceChildren();
  let prev = 0;
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "wf-row";
    line.setAttribute("role", "row");
    line.dataset.stage = row.key;
    const label = document.createElement("span");
    label.className = "wf-label";
    label.setAttribute("role", "cell");
    label.textContent = row.label;
    const track = document.createElement("span");
    track.className = "wf-track";
    track.setAttribute("role", "presentation");
    const bar = document.createElement("span");
    bar.className = "wf-bar";
    const start = Math.min(prev, row.ms);
    bar.style.left = `${(start / total) * 100}%`;
    bar.style.width = `${Math.max(0.6, ((row.ms - start) / total) * 100)}%`;
    track.appendChild(bar);
    const value = document.createElement("span");
    value.className = "wf-ms";
    value.setAttribute("role", "cell");
    value.textContent = `${Math.round(row.ms)} ms`;
    line.append(label, track, value);
    grid.appendChild(line);
    prev = Math.max(prev, row.ms);
  }
  const heard = rows.find((r) => r.key === "client_first_audio") || rows[rows.length - 1];
  const what = turn.typedAt && !ts.speech_end ? "Text to voice" : "Voice to voice";
  figure.querySelector(".v2v").textContent = `${what}: ${Math.round(heard.ms)} ms`;
  figure.hidden = false;
  stats.latencyShown += 1;
}

// ---------------------------------------------------------------- events

function onEvent(ev) {
  window.vf.events.push(ev.type);
  if (window.vf.events.length > 200) window.vf.events.shift();
  switch (ev.type) {
    case "ready":
      return onReady(ev);
    case "wake":
      return setHint("Yes? Listening…", "listening");
    case "speech_started":
      turnFor("");
      return setHint("Listening…", "listening");
    case "speech_stopped":
      return setHint("Thinking…", "thinking");
    case "transcript_partial":
      return userText(turnFor(""), ev.text, true);
    case "transcript_final": {
      const turn = turnFor(ev.turn_id);
      turn.final = true;
      userText(turn, ev.text, false);
      return setHint("Thinking…", "thinking");
    }
    case "reply_delta": {
      const turn = turnFor(ev.turn_id);
      turn.reply += ev.text;
      assistant(turn).querySelector(".text").textContent = turn.reply;
      $("stop").hidden = false;
      return scrollDown();
    }
    case "reply_done": {
      const turn = turnFor(ev.turn_id);
      if (ev.text && !turn.reply) {
        turn.reply = ev.text;
        assistant(turn).querySelector(".text").textContent = ev.text;
      }
      if (!app.player || !app.player.playing) $("stop").hidden = true;
      return;
    }
    case "tool_call":
    case "tool_result":
      return toolActivity(turnFor(ev.turn_id), ev);
    case "audio_start": {
      const turn = turnFor(ev.turn_id);
      turn.ts = ev.ts || {};
      turn.audio = true;
      app.audioTurn = turn;
      if (app.player) app.player.begin(ev.sample_rate || OUTPUT_RATE);
      return;
    }
    case "audio_end": {
      const turn = turnFor(ev.turn_id);
      turn.closed = true;
      if (app.player) app.player.end();
      return;
    }
    case "interrupted": {
      if (app.player) app.player.flush(); // at once: the user is talking
      const turn = ev.turn_id ? app.turns.find((t) => t.id === ev.turn_id) : null;
      if (turn && !turn.closed && ev.reason !== "new_turn") {
        turn.closed = true;
        assistant(turn).classList.add("interrupted");
      }
      $("stop").hidden = true;
      return;
    }
    case "notice":
      return showNotice(ev.message, "info");
    case "error":
      return showNotice(ev.message, "error");
    default:
      return undefined; // a newer server's event: nothing to show
  }
}

function onAudio(data) {
  stats.audioFrames += 1;
  if (!app.player) return;
  const heardAt = app.player.push(data);
  const turn = app.audioTurn;
  if (turn && heardAt && !turn.heardAt) {
    turn.heardAt = heardAt;
    renderLatency(turn);
  }
}

function onReady(ev) {
  app.ready = ev;
  // A resumed session goes on from where the page was; a new one starts at its stream's beginning.
  if (!ev.resumed || app.resume.sessionId !== ev.session_id) {
    app.resume = { sessionId: ev.session_id, after: ev.stream_id || "", audioBytes: 0 };
  }
  app.reconnectDelay = RECONNECT_FIRST_MS;
  window.vf.sessionId = ev.session_id;
  window.vf.resumed = Boolean(ev.resumed);
  if (ev.wake_words && ev.wake_words.length && !ev.wake_words.includes(app.wakeWord)) app.wakeWord = ev.wake_words[0];
  $("wake-name").textContent = `“${app.wakeWord.replace(/_/g, " ")}”`;
  $("wake").disabled = !(ev.wake_words && ev.wake_words.length);
  fillVoices(ev.voices || []);
  setStatus("connected", "Connected");
  setHint(idleHint(), "idle");
}

function fillVoices(voices) {
  const select = $("voice");
  const current = select.value || localStorage.getItem("vf.voice") || "";
  select.replaceChildren(new Option("Default", ""));
  for (const v of voices) select.appendChild(new Option(v.replace(/[-_]/g, " "), v));
  select.value = voices.includes(current) ? current : "";
  select.disabled = voices.length === 0;
}

// ---------------------------------------------------------------- wiring

function sendText(text) {
  const turn = newTurn();
  turn.typedAt = Date.now() / 1000;
  turn.final = true;
  userText(turn, text, false);
  send({ type: "text", text });
}

async function init() {
  try {
    const res = await fetch("/v1/config");
    if (res.ok) app.config = await res.json();
  } catch (_) { /* the defaults will do */ }
  $("wake").checked = localStorage.getItem("vf.wake") === "on";

  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    setToken(fromUrl, false);
    history.replaceState(null, "", location.pathname); // keep the token out of history and screenshots
  } else {
    app.token = storedToken();
  }
  if (app.token) showTalk();
  else showSignin();

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token-input").value, $("remember").checked);
    $("token-input").value = "";
    showTalk();
    $("mic").focus();
  });
  $("dev-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      setToken(await devSignin($("dev-name").value.trim()), $("remember").checked);
      showTalk();
      $("mic").focus();
    } catch (err) {
      $("signin-error").textContent = err.message;
    }
  });
  $("signout").addEventListener("click", signOut);
  $("mic").addEventListener("click", toggleMic);
  $("stop").addEventListener("click", () => send({ type: "interrupt" }));
  $("wake").addEventListener("change", () => {
    const on = $("wake").checked;
    localStorage.setItem("vf.wake", on ? "on" : "off");
    send(on ? { type: "configure", wake_word: app.wakeWord } : { type: "configure", listen_always: true });
    setHint(idleHint(), "idle");
  });
  $("voice").addEventListener("change", () => {
    localStorage.setItem("vf.voice", $("voice").value);
    send({ type: "configure", voice: $("voice").value }); // "" = the server's default voice
  });
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("composer-input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    await ensureAudio().catch(() => undefined);
    if (!app.ws) {
      connect();
      await new Promise((resolve) => {
        const t0 = Date.now();
        const wait = () => (app.ready || Date.now() - t0 > 5000 ? resolve() : setTimeout(wait, 50));
        wait();
      });
    }
    if (!app.ready) return showNotice("Not connected yet; try again in a moment.", "error");
    sendText(text);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && app.player && app.player.playing) send({ type: "interrupt" });
  });
  renderMic();
}

document.addEventListener("DOMContentLoaded", init);
