"""The pretrained suite: tasks written in plain language, for pretrained and instruct LMs.

The zoo's families (`c=4;y=c;y?`) are formats our character-level models were trained on; a
pretrained model has never seen them. These families say what they ask in words, one example
per paragraph (shots are separated by a blank line), and each answer is one line that follows a
space, as a pretrained LM writes it (`Answer: cat dog`). Each family is a difficulty ladder: its
base region is the bottom rung, which a ~100M-parameter model solves, and its variants climb
along named axes to rungs that much larger models still miss, so that a model's failure
frontier falls inside the ladder.

    copy      repeat a list of words             words (2, 4 .. 256), unseen (nonce) words
    sequence  the next term of an arithmetic run digits (3, 4, 8, 16), step (2, 10, -1, 7)
    index     the word at a position of a list   position (second, third, last), length (8, 16)
    case      a word in capital letters          words (2, 4, 8), nonce words; components: each word
    lookup    a fact among facts in context      facts (2, 4 .. 128); component: the fact alone
    twohop    a two-hop chain of facts           hops (2), distractors (2, 8, 32), order; components: each hop

The productivity and distraction ladders double, so that a larger model still meets its
breaking point on them; their top rungs stay within about a thousand tokens of a BPE tokenizer
(a 1024-token context such as GPT-2's holds every item with its shots).
"""
from __future__ import annotations

import random
from typing import Any

from .family import TaskFamily
from .records import Cell, Item

# Common English nouns, each one word in every mainstream tokenizer's vocabulary.
WORDS = ("cat", "dog", "sun", "tree", "book", "fish", "lamp", "door", "cup", "hat", "bird", "car", "rain",
         "milk", "rock", "star", "ship", "coin", "bell", "leaf", "apple", "house", "river", "chair", "table",
         "window", "garden", "paper", "music", "water", "bread", "horse", "cloud", "stone", "glass", "road",
         "snow", "king", "ring", "box")
# More nouns, for the cells that need more distinct things than WORDS holds (the others, and
# the base region, draw from WORDS alone, so their items are what they always were).
MORE_WORDS = ("ball", "bag", "bed", "boat", "bone", "bowl", "brick", "broom", "brush", "bucket", "cake",
              "candle", "cap", "card", "carpet", "chain", "cheese", "clock", "coat", "comb", "cork", "cow",
              "crown", "desk", "dish", "drum", "duck", "egg", "fan", "feather", "fence", "flag", "fork", "frog",
              "goat", "hammer", "hill", "hook", "jar", "jug", "kettle", "key", "kite", "knife", "ladder", "lemon",
              "lion", "lock", "map", "mask", "match", "mirror", "moon", "mouse", "nail", "needle", "nest", "net",
              "onion", "pan", "pear", "pen", "pencil", "piano", "pig", "pillow", "pipe", "plate", "plum", "pot",
              "rabbit", "rope", "rug", "sail", "salt", "sheep", "shell", "shirt", "shoe", "sock", "sofa", "spoon",
              "stamp", "stick", "sugar", "sword", "tent", "tiger", "tooth", "towel", "toy", "train", "truck",
              "vase", "wall", "wheel", "whistle", "wing", "wire", "wolf")
# Made-up words: pronounceable, in no dictionary, so split into several tokens.
SYLLABLES = ("da", "ke", "lo", "mi", "nu", "po", "ra", "si", "tu", "ve", "zo", "bri", "gla", "fen", "dax",
             "wug", "pim", "tor")
COLOURS = ("red", "blue", "green", "black", "white", "pink", "gray", "brown", "gold", "orange")
NAMES = ("Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gina", "Hugo", "Ivy", "Jack", "Kim", "Leo", "Mia",
         "Ned", "Olga", "Paul")
MORE_NAMES = ("Quinn", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena", "Yara", "Zoe", "Abe", "Bea", "Cole",
              "Dora", "Eli", "Fay", "Gus", "Hana", "Ian", "Jo", "Kai", "Lena", "Max", "Nina", "Otto", "Pia",
              "Ray", "Sara", "Tom", "Ula", "Vera", "Will")
PLACES = ("Dalor", "Fenwick", "Gorsk", "Halm", "Ivren", "Jarth", "Kelso", "Lumen", "Morva", "Nesh",
          "Orlin", "Pask", "Quell", "Rusk", "Selby", "Tarn")
MORE_PLACES = ("Ambry", "Brell", "Corrin", "Dunmor", "Evesk", "Farrow", "Glenth", "Harsk", "Ilby", "Jorvel",
               "Kestry", "Lorn", "Marrow", "Norsk", "Ostry", "Pellin", "Quarn", "Rothby", "Sarnel", "Thorne",
               "Ullin", "Varsk", "Wendle", "Yarrow", "Zennor", "Arvel", "Bransk", "Calder", "Dremm", "Esk",
               "Fallow", "Gant")
REGIONS = ("Avonia", "Belmark", "Corva", "Drossia", "Elvar", "Fenmark", "Galia", "Hestra")
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def nonce(rng: random.Random) -> str:
    return "".join(rng.sample(SYLLABLES, 2))


def distinct(rng: random.Random, pool: tuple[str, ...], more: tuple[str, ...], n: int) -> list[str]:
    """`n` different entries of `pool`, reaching into `more` only when `pool` is too short."""
    return rng.sample(pool if n <= len(pool) else pool + more, n)


def draw_words(rng: random.Random, n: int, vocabulary: str) -> list[str]:
    """`n` words, common ones or made-up ones (`vocabulary` "nonce"), repeats allowed."""
    return [nonce(rng) if vocabulary == "nonce" else rng.choice(WORDS) for _ in range(n)]


class PlainFamily(TaskFamily):
    """A family of the pretrained suite: shots one paragraph each, answers after a space."""

    shot_separator = "\n\n"


class Copy(PlainFamily):
    name = "copy"
    description = "Repeat a list of words exactly."
    axes = {"words": "words to repeat", "vocabulary": "common words or made-up (nonce) words"}
    cells = (
        Cell("words=1", {"words": 1, "vocabulary": "common"}, "base"),
        Cell("words=2", {"words": 2, "vocabulary": "common"}, "productivity"),
        Cell("words=4", {"words": 4, "vocabulary": "common"}, "productivity"),
        Cell("words=8", {"words": 8, "vocabulary": "common"}, "productivity"),
        Cell("words=16", {"words": 16, "vocabulary": "common"}, "productivity"),
        Cell("words=32", {"words": 32, "vocabulary": "common"}, "productivity"),
        Cell("words=64", {"words": 64, "vocabulary": "common"}, "productivity"),
        Cell("words=128", {"words": 128, "vocabulary": "common"}, "productivity"),
        Cell("words=256", {"words": 256, "vocabulary": "common"}, "productivity"),
        Cell("nonce,words=2", {"words": 2, "vocabulary": "nonce"}, "substitutivity",
             "two made-up words: the same act on words the model has never read"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        n = cell.axes["words"]
        words = draw_words(rng, n, cell.axes["vocabulary"])
        text = " ".join(words)
        return (f"Repeat the words exactly.\nWords: {text}\nAnswer:", f" {text}",
                {"words": n, "vocabulary": cell.axes["vocabulary"]}, {"words": words})


class Sequence(PlainFamily):
    name = "sequence"
    description = "The next term of an arithmetic sequence of whole numbers."
    axes = {"digits": "digits of every term", "step": "difference between terms", "terms": "terms shown"}
    cells = (
        Cell("step=1,digits=2", {"step": 1, "digits": 2, "terms": 4}, "base"),
        Cell("digits=3", {"step": 1, "digits": 3, "terms": 4}, "productivity"),
        Cell("digits=4", {"step": 1, "digits": 4, "terms": 4}, "productivity"),
        Cell("digits=8", {"step": 1, "digits": 8, "terms": 4}, "productivity"),
        Cell("digits=16", {"step": 1, "digits": 16, "terms": 4}, "productivity"),
        Cell("step=2", {"step": 2, "digits": 2, "terms": 4}, "systematicity",
             "counting by two: seen numbers, an unseen step"),
        Cell("step=10", {"step": 10, "digits": 2, "terms": 4}, "systematicity"),
        Cell("step=-1", {"step": -1, "digits": 2, "terms": 4}, "systematicity", "counting down"),
        Cell("step=7,digits=3", {"step": 7, "digits": 3, "terms": 4}, "productivity"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        step, digits, terms = cell.axes["step"], cell.axes["digits"], cell.axes["terms"]
        lo, hi = 10 ** (digits - 1), 10 ** digits - 1  # every term, the answer too, has `digits` digits
        first_lo, first_hi = (lo, hi - step * terms) if step > 0 else (lo - step * terms, hi)
        first = rng.randint(first_lo, first_hi)
        shown = [first + step * k for k in range(terms)]
        return (f"Continue the sequence.\nSequence: {', '.join(map(str, shown))}\nAnswer:",
                f" {first + step * terms}", {"step": step, "digits": digits, "terms": terms}, {"shown": shown})


class Index(PlainFamily):
    name = "index"
    description = "The word at a named position of a list."
    axes = {"position": "1-based position asked for (-1: the last)", "length": "words in the list"}
    cells = (
        Cell("first,length=3", {"position": 1, "length": 3}, "base"),
        Cell("first,length=4", {"position": 1, "length": 4}, "base"),
        Cell("first,length=8", {"position": 1, "length": 8}, "productivity"),
        Cell("first,length=16", {"position": 1, "length": 16}, "productivity"),
        Cell("second,length=3", {"position": 2, "length": 3}, "systematicity",
             "a seen list, an unseen position"),
        Cell("third,length=5", {"position": 3, "length": 5}, "systematicity"),
        Cell("last,length=3", {"position": -1, "length": 3}, "systematicity"),
        Cell("last,length=8", {"position": -1, "length": 8}, "productivity"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        position, length = cell.axes["position"], cell.axes["length"]
        words = rng.sample(WORDS, length)
        which = "last" if position == -1 else ORDINALS[position]
        answer = words[-1] if position == -1 else words[position - 1]
        return (f"Words: {' '.join(words)}\nThe {which} word is", f" {answer}",
                {"position": position, "length": length}, {"words": words})


class Case(PlainFamily):
    name = "case"
    description = "Words written again in capital letters."
    axes = {"words": "words to write in capitals", "vocabulary": "common words or made-up (nonce) words"}
    cells = (
        Cell("words=1", {"words": 1, "vocabulary": "common"}, "base"),
        Cell("words=2", {"words": 2, "vocabulary": "common"}, "productivity",
             "two words at once: each alone is the base task"),
        Cell("words=4", {"words": 4, "vocabulary": "common"}, "productivity"),
        Cell("words=8", {"words": 8, "vocabulary": "common"}, "productivity"),
        Cell("nonce,words=1", {"words": 1, "vocabulary": "nonce"}, "substitutivity",
             "a made-up word: its letters, not a known word's capitals"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        n = cell.axes["words"]
        words = draw_words(rng, n, cell.axes["vocabulary"])
        return (self.render(words), " " + " ".join(words).upper(),
                {"words": n, "vocabulary": cell.axes["vocabulary"]}, {"words": words})

    @staticmethod
    def render(words: list[str]) -> str:
        return f"Lowercase: {' '.join(words)}\nUppercase:"

    def components(self, item: Item) -> list[Item]:
        """One item per word: that word alone in capitals (the base task)."""
        words = item.meta["words"]
        if len(words) < 2:
            return []
        return [Item(id=f"{item.id}.{k}", family=self.name, cell=f"{item.cell}/component",
                     axes={"words": 1, "vocabulary": item.axes["vocabulary"]}, prompt=self.render([word]),
                     target=f" {word.upper()}", meta={"parent": item.id, "step": k})
                for k, word in enumerate(words)]


class Lookup(PlainFamily):
    name = "lookup"
    description = "The colour of one thing among several stated in context."
    axes = {"facts": "facts stated", "position": "where the asked fact stands: first, middle or last"}
    cells = (
        Cell("facts=1", {"facts": 1, "position": "first"}, "base"),
        Cell("facts=2", {"facts": 2, "position": "any"}, "distraction", "the asked fact and one other"),
        Cell("facts=4", {"facts": 4, "position": "any"}, "distraction", "the asked fact among three others"),
        Cell("facts=8", {"facts": 8, "position": "any"}, "distraction"),
        Cell("facts=16", {"facts": 16, "position": "any"}, "distraction"),
        Cell("facts=32", {"facts": 32, "position": "any"}, "distraction"),
        Cell("facts=64", {"facts": 64, "position": "any"}, "distraction"),
        Cell("facts=128", {"facts": 128, "position": "any"}, "distraction"),
        Cell("facts=8,first", {"facts": 8, "position": "first"}, "distraction",
             "the asked fact first, seven after it"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        n = cell.axes["facts"]
        things = distinct(rng, WORDS, MORE_WORDS, n)
        colours = [rng.choice(COLOURS) for _ in things]
        asked = 0 if cell.axes["position"] == "first" else rng.randrange(n)
        where = "first" if asked == 0 else "last" if asked == n - 1 else "middle"
        facts = [(thing, colour) for thing, colour in zip(things, colours)]
        return (self.render(facts, things[asked]), f" {colours[asked]}", {"facts": n, "position": where},
                {"facts": [list(f) for f in facts], "asked": things[asked]})

    @staticmethod
    def render(facts: list[tuple[str, str]], asked: str) -> str:
        stated = " ".join(f"The {thing} is {colour}." for thing, colour in facts)
        return f"{stated}\nQuestion: what colour is the {asked}?\nAnswer:"

    def components(self, item: Item) -> list[Item]:
        """The asked fact stated alone: the lookup without the others."""
        asked = item.meta["asked"]
        if item.axes["facts"] < 2:
            return []
        fact = next((t, c) for t, c in item.meta["facts"] if t == asked)
        return [Item(id=f"{item.id}.0", family=self.name, cell=f"{item.cell}/component",
                     axes={"facts": 1, "position": "first"}, prompt=self.render([fact], asked),
                     target=item.target, meta={"parent": item.id, "step": 0})]


class TwoHop(PlainFamily):
    name = "twohop"
    description = "Where someone lives, in a region reached through a town: two facts chained in context."
    axes = {"hops": "facts chained from the person to the answer",
            "distractors": "facts about other people and towns",
            "order": "forward (person first) or reversed (town fact first)"}
    cells = (
        Cell("hops=1", {"hops": 1, "distractors": 0, "order": "forward"}, "base"),
        Cell("hops=1,distractors=2", {"hops": 1, "distractors": 2, "order": "forward"}, "distraction"),
        Cell("hops=2", {"hops": 2, "distractors": 0, "order": "forward"}, "depth",
             "the town's region: two seen facts chained"),
        Cell("hops=2,distractors=2", {"hops": 2, "distractors": 2, "order": "forward"}, "depth"),
        Cell("hops=2,reversed", {"hops": 2, "distractors": 0, "order": "reversed"}, "systematicity",
             "the two facts in the other order"),
        Cell("hops=1,distractors=8", {"hops": 1, "distractors": 8, "order": "forward"}, "distraction"),
        Cell("hops=1,distractors=32", {"hops": 1, "distractors": 32, "order": "forward"}, "distraction"),
    )

    def sample(self, cell: Cell, rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        hops, n_distract = cell.axes["hops"], cell.axes["distractors"]
        people = distinct(rng, NAMES, MORE_NAMES, 1 + n_distract)
        towns = distinct(rng, PLACES, MORE_PLACES, 1 + n_distract)
        regions = [rng.choice(REGIONS) for _ in towns]
        person, town, region = people[0], towns[0], regions[0]
        chain = [f"{person} lives in {town}."] + ([f"{town} is in {region}."] if hops == 2 else [])
        if cell.axes["order"] == "reversed":
            chain.reverse()
        others = []
        for k in range(1, 1 + n_distract):
            others.append(f"{people[k]} lives in {towns[k]}." if hops == 1 or k % 2 else f"{towns[k]} is in {regions[k]}.")
        facts = list(chain)
        for fact in others:  # distractors anywhere, the chain's own order kept
            facts.insert(rng.randint(0, len(facts)), fact)
        question = f"which town does {person} live in?" if hops == 1 else f"which region does {person} live in?"
        answer = town if hops == 1 else region
        return (f"{' '.join(facts)}\nQuestion: {question}\nAnswer:", f" {answer}",
                {"hops": hops, "distractors": n_distract, "order": cell.axes["order"]},
                {"person": person, "town": town, "region": region, "facts": facts})

    def components(self, item: Item) -> list[Item]:
        """Each hop alone: the person's town, then the town's region."""
        if item.axes["hops"] < 2:
            return []
        person, town, region = item.meta["person"], item.meta["town"], item.meta["region"]
        parts = [(f"{person} lives in {town}.\nQuestion: which town does {person} live in?\nAnswer:", f" {town}"),
                 (f"{town} is in {region}.\nQuestion: which region is {town} in?\nAnswer:", f" {region}")]
        return [Item(id=f"{item.id}.{k}", family=self.name, cell=f"{item.cell}/component",
                     axes={"hops": 1, "distractors": 0, "order": "forward"}, prompt=prompt, target=target,
                     meta={"parent": item.id, "step": k})
                for k, (prompt, target) in enumerate(parts)]
