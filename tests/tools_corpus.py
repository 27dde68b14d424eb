"""A deterministic folder of documents on varied topics, for file-search tests and the benchmark.

Each file is about one subject of one topic (a recipe for paella, a trip to
Kyoto...), so a query about that subject has one right answer. File names are
neutral (``doc-017.md``) so that only the content can find them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

TOPICS: dict[str, tuple[list[str], list[str], str]] = {
    # topic: (subjects, sentence templates, query template)
    "recipe": (
        ["lasagna", "pad thai", "ratatouille", "shakshuka", "paella", "goulash", "risotto", "falafel",
         "pho", "tiramisu", "gazpacho", "moussaka", "biryani", "ceviche", "pierogi", "jambalaya",
         "bibimbap", "couscous", "borscht", "empanadas"],
        ["My favourite recipe for {x} takes about an hour.", "For the {x}, chop everything before heating the pan.",
         "Grandma always served {x} on Sundays with fresh bread.", "The secret to good {x} is patience and salt.",
         "Next time I cook {x} I will double the spices.", "Leftover {x} keeps for three days in the fridge."],
        "how do I cook {x}",
    ),
    "travel": (
        ["Lisbon", "Kyoto", "Reykjavik", "Marrakesh", "Cusco", "Tallinn", "Hanoi", "Cape Town", "Valparaiso",
         "Dubrovnik", "Tbilisi", "Oaxaca", "Bergen", "Zanzibar", "Ljubljana", "Hobart", "Porto",
         "Luang Prabang", "Quebec City", "Salzburg"],
        ["Our trip to {x} started with a delayed flight.", "In {x} we walked the old town every morning.",
         "The hotel in {x} had a view over the rooftops.", "Must see again in {x}: the market and the museum.",
         "Budget for {x}: trains were cheap, dinners were not.", "I want to go back to {x} in the spring."],
        "my holiday in {x}",
    ),
    "garden": (
        ["orchids", "tomatoes", "lavender", "basil", "roses", "succulents", "ferns", "blueberries", "sunflowers",
         "peonies", "hydrangeas", "strawberries", "bonsai trees", "cucumbers", "tulips", "rosemary", "dahlias",
         "zucchini", "mint", "hostas"],
        ["The {x} need water twice a week in summer.", "I repotted the {x} with fresh compost.",
         "Aphids attacked the {x} again this year.", "The {x} grow best in partial shade by the fence.",
         "Prune the {x} after they finish flowering.", "Fertilize the {x} once a month from April."],
        "taking care of my {x}",
    ),
    "repair": (
        ["bicycle", "lawn mower", "espresso machine", "dishwasher", "motorcycle", "sewing machine", "furnace",
         "chainsaw", "washing machine", "kayak", "leaf blower", "treadmill", "garage door", "water heater",
         "snow blower", "air conditioner", "printer", "refrigerator", "electric scooter", "pressure washer"],
        ["The {x} made a grinding noise, so I opened it up.", "Replaced the worn belt on the {x}.",
         "The manual for the {x} says to service it every year.", "The {x} warranty ends next March.",
         "Spare parts for the {x} are in the blue box in the garage.", "Cleaning the {x} filter fixed the problem."],
        "fixing the {x}",
    ),
    "money": (
        ["mortgage", "retirement savings", "car loan", "tax return", "electricity bill", "home insurance",
         "stock portfolio", "credit card debt", "student loan", "emergency fund", "phone contract",
         "childcare costs", "rent increase", "pension plan", "holiday savings", "water bill",
         "gym membership", "internet subscription", "property tax", "wedding budget"],
        ["This month the {x} went up by forty dollars.", "I should compare offers for the {x} before renewing.",
         "Paperwork for the {x} is in the grey folder.", "Set a reminder to review the {x} in January.",
         "The bank called about the {x} yesterday.", "Plan: put a little aside for the {x} every week."],
        "what about my {x}",
    ),
    "health": (
        ["marathon training", "yoga practice", "swimming lessons", "knee injury", "sleep schedule",
         "vitamin D levels", "weightlifting routine", "hay fever", "back pain", "blood pressure", "migraines",
         "physiotherapy", "meditation habit", "cholesterol", "dental checkup", "eye exam", "flu vaccine",
         "running shoes", "posture", "step count"],
        ["The doctor said my {x} is getting better.", "Week three of working on my {x}.",
         "I wrote down questions about the {x} for the next appointment.", "Progress on the {x} is slow but steady.",
         "My {x} was worse after the long weekend.", "The {x} plan: small steps every day."],
        "notes on my {x}",
    ),
    "pets": (
        ["golden retriever", "parrot", "hamster", "tabby cat", "goldfish", "rabbit", "tortoise", "ferret",
         "beagle", "guinea pig", "canary", "border collie", "iguana", "chinchilla", "siamese cat", "axolotl",
         "pony", "hedgehog", "dachshund", "cockatiel"],
        ["The {x} needs its vaccination in May.", "Bought a bigger bed for the {x}.",
         "The vet weighed the {x} and it gained a little.", "Our {x} loves the new toy.",
         "Feeding the {x}: twice a day, no grapes.", "Someone has to look after the {x} during the holidays."],
        "looking after our {x}",
    ),
    "music": (
        ["cello", "ukulele", "drum kit", "piano", "trumpet", "harmonica", "violin", "banjo", "saxophone", "flute",
         "bass guitar", "accordion", "clarinet", "mandolin", "harp", "oboe", "synthesizer", "bagpipes",
         "trombone", "xylophone"],
        ["Practised the {x} for forty minutes today.", "The teacher says my {x} timing improved.",
         "The {x} needs new strings or a tune-up.", "Learning a new song on the {x} this week.",
         "The {x} recital is on the last Friday of June.", "Recorded myself playing the {x} and it sounded fine."],
        "learning to play the {x}",
    ),
    "tech": (
        ["Rust", "Kubernetes", "PostgreSQL", "React", "Haskell", "Docker", "GraphQL", "Terraform", "TensorFlow",
         "Bash scripting", "WebAssembly", "Elixir", "Kotlin", "Nginx", "SQLite", "Vim", "Ansible", "Kafka",
         "Svelte", "Fortran"],
        ["Started reading the {x} documentation tonight.", "The {x} build failed because of a version mismatch.",
         "Wrote a small project in {x} to learn it.", "{x} tip: read the error messages twice.",
         "Questions about {x} for the meetup on Thursday.", "The team wants to migrate more services to {x}."],
        "what I learned about {x}",
    ),
    "sky": (
        ["Jupiter", "black holes", "Saturn's rings", "the Andromeda galaxy", "comets", "Mars rovers",
         "exoplanets", "solar eclipses", "neutron stars", "the Moon's craters", "the Orion nebula",
         "meteor showers", "the northern lights", "Venus", "the Milky Way", "supernovae", "Pluto",
         "the International Space Station", "asteroids", "pulsars"],
        ["Watched a documentary about {x} last night.", "Through the telescope, {x} looked amazing.",
         "An article explained how {x} were discovered.", "I want to photograph {x} someday.",
         "Facts about {x} for the kids' school project.", "The astronomy club talked about {x}."],
        "facts about {x}",
    ),
}

FILLER = [
    "Written on a rainy afternoon.", "More later.", "Remember to check this again.", "Not urgent.",
    "See the other notes too.", "Update after the weekend.",
]


@dataclass
class Doc:
    """One generated file and a query it should answer."""

    path: Path
    topic: str
    subject: str
    query: str


def write_corpus(folder: Path, count: int = 200, seed: int = 7) -> list[Doc]:
    """Write ``count`` files under ``folder`` (some in a subfolder) and return them."""
    rng = random.Random(seed)
    pairs = [(topic, subject) for topic, (subjects, _, _) in TOPICS.items() for subject in subjects]
    rng.shuffle(pairs)
    docs = []
    for i in range(count):
        topic, subject = pairs[i % len(pairs)]
        _, templates, query = TOPICS[topic]
        lines = [t.format(x=subject) for t in rng.sample(templates, 3)] + rng.sample(FILLER, 1)
        rng.shuffle(lines)
        sub = folder / ("archive" if i % 5 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"doc-{i:03d}.{'md' if i % 2 else 'txt'}"
        path.write_text(f"# {topic} notes\n\n" + " ".join(lines) + "\n", encoding="utf-8")
        docs.append(Doc(path, topic, subject, query.format(x=subject)))
    return docs


def write_pdf(path: Path, text: str) -> None:
    """A minimal one-page PDF whose text pypdf can extract (no PDF library needed)."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
