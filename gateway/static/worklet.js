// AudioWorklet: microphone samples -> PCM16 mono at 16 kHz, in ~40 ms frames.
//
// Runs on the audio rendering thread. The AudioContext usually runs at 44.1
// or 48 kHz, so each block is low-pass filtered (windowed-sinc FIR, against
// aliasing) and then resampled by linear interpolation at the target rate.
// Finished frames are transferred (not copied) to the page with their level.

const TAPS = 31;

function lowPass(cutoff) {
  // cutoff in cycles per input sample (< 0.5); Blackman-windowed sinc, unit DC gain.
  const h = new Float32Array(TAPS);
  const m = (TAPS - 1) / 2;
  let sum = 0;
  for (let k = 0; k < TAPS; k++) {
    const x = k - m;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * k) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * k) / (TAPS - 1));
    h[k] = sinc * w;
    sum += h[k];
  }
  for (let k = 0; k < TAPS; k++) h[k] /= sum;
  return h;
}

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.frameSamples = Math.round((this.outRate * (opts.frameMs || 40)) / 1000);
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.passthrough = Math.abs(this.step - 1) < 1e-9;
    this.taps = this.step > 1 ? lowPass((0.5 / this.step) * 0.9) : null;
    this.history = new Float32Array(TAPS - 1); // input tail for the FIR
    this.prev = 0; // last filtered sample of the previous block
    this.t = 0; // position of the next output sample, from `prev`
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.energy = 0;
  }

  filter(input) {
    if (!this.taps) return input;
    const n = input.length;
    const ext = new Float32Array(TAPS - 1 + n);
    ext.set(this.history, 0);
    ext.set(input, TAPS - 1);
    const out = new Float32Array(n);
    const h = this.taps;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k < TAPS; k++) acc += h[k] * ext[i + k];
      out[i] = acc;
    }
    this.history = ext.slice(n);
    return out;
  }

  emit(value) {
    const s = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.energy += s * s;
    if (this.filled === this.frameSamples) {
      const level = Math.sqrt(this.energy / this.frameSamples);
      this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
      this.energy = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const mono = channels[0]; // getUserMedia is asked for one channel
    if (this.passthrough) {
      for (let i = 0; i < mono.length; i++) this.emit(mono[i]);
      return true;
    }
    const y = this.filter(mono);
    const n = y.length;
    // z = [prev, y0 .. y(n-1)]: interpolate at t, t + step, ... while t < n.
    let t = this.t;
    while (t < n) {
      const i = Math.floor(t);
      const frac = t - i;
      const a = i === 0 ? this.prev : y[i - 1];
      const b = y[i];
      this.emit(a + (b - a) * frac);
      t += this.step;
    }
    this.t = t - n;
    this.prev = y[n - 1];
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
