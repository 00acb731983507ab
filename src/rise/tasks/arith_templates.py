"""Word-problem templates of the synthetic `arith` task. Standard library only.

Each template draws numbers with a `Builder` and returns the question; every arithmetic step the
solution performs goes through `Builder.calc`, which renders one GSM8K-style line
("Tom buys 4 * 12 = <<4*12=48>>48 apples.") and records the step as a small program
(`[a, op, b]`, operands either ints or "rK", the result of step K) so that a flawed variant of the
solution can be recomputed (`ArithTask.corrupt_solution`). A draw that leaves the difficulty
bounds (negative or too large intermediate, inexact division, disallowed operator) raises
`Reject` and the generator draws again.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

NAMES = (("Tom", "he"), ("Mia", "she"), ("Sam", "he"), ("Lena", "she"), ("Omar", "he"),
         ("Ava", "she"), ("Raj", "he"), ("Zoe", "she"), ("Ben", "he"), ("Nina", "she"),
         ("Leo", "he"), ("Ivy", "she"), ("Max", "he"), ("Ella", "she"), ("Kai", "he"),
         ("Rosa", "she"), ("Finn", "he"), ("Maya", "she"), ("Jack", "he"), ("Ana", "she"))
GOODS = (("apples", "bags"), ("eggs", "cartons"), ("cookies", "boxes"), ("marbles", "jars"),
         ("stickers", "sheets"), ("pencils", "packs"), ("cupcakes", "trays"), ("stamps", "books"),
         ("shells", "buckets"), ("cards", "decks"), ("beads", "strings"), ("oranges", "crates"),
         ("candles", "boxes"), ("toy cars", "bins"), ("flowers", "bunches"), ("buttons", "tins"))
ITEMS = ("pens", "notebooks", "mugs", "kites", "hats", "books", "toys", "lamps", "balls", "plates")
THINGS = ("bike", "game", "jacket", "radio", "tent", "watch", "guitar", "scooter")
PLANTS = ("tomato plants", "rose bushes", "pepper plants", "tulips", "bean plants", "sunflowers")
SYMBOLS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


class Reject(Exception):
    """This draw breaks a difficulty bound; draw again."""


class R(int):
    """An intermediate result: an int that remembers which step produced it."""

    def __new__(cls, value: int, step: int):
        obj = super().__new__(cls, value)
        obj.step = step
        return obj


@dataclass
class Builder:
    rng: random.Random
    max_value: int = 999
    max_factor: int = 12
    ops: str = "+-*/"
    lines: list[str] = field(default_factory=list)
    program: list[list] = field(default_factory=list)

    # -- number draws ----------------------------------------------------------------------------
    def n(self, lo: int, hi: int) -> int:
        """A uniform int in [lo, min(hi, max_value)]."""
        hi = min(hi, self.max_value)
        if hi < lo:
            raise Reject
        return self.rng.randint(lo, hi)

    def factor(self, lo: int = 2) -> int:
        return self.n(lo, self.max_factor)

    def divisor_of(self, x: int) -> int:
        """A divisor of x in [2, max_factor]."""
        options = [d for d in range(2, self.max_factor + 1) if x % d == 0 and x // d > 1]
        if not options:
            raise Reject
        return self.rng.choice(options)

    def pick(self, seq):
        return self.rng.choice(seq)

    def maybe(self, p: float = 0.5) -> bool:
        return self.rng.random() < p

    # -- steps -----------------------------------------------------------------------------------
    def calc(self, a: int, op: str, b: int, line: str) -> R:
        """Do one step; `line` holds "{c}" where the "a op b = <<a op b=r>>r" text goes."""
        if op not in self.ops or max(a, b) > self.max_value:
            raise Reject
        if op == "/":
            if b == 0 or a % b:
                raise Reject
            r = a // b
        else:
            r = SYMBOLS[op](a, b)
        if r < 0 or r > self.max_value:
            raise Reject
        self.program.append([_ref(a), op, _ref(b)])
        self.lines.append(line.format(c=calc_text(a, op, b, r)))
        return R(r, len(self.program) - 1)


def _ref(x: int) -> int | str:
    return f"r{x.step}" if isinstance(x, R) else int(x)


def calc_text(a: int, op: str, b: int, r: int) -> str:
    return f"{a} {op} {b} = <<{a}{op}{b}={r}>>{r}"


# -- templates: each returns the question ---------------------------------------------------------
def t_groups(b: Builder) -> str:
    (nm, he), (obj, grp), (fr, _) = b.pick(NAMES), b.pick(GOODS), b.pick(NAMES)
    a, k, m = b.n(2, 99), b.factor(), b.n(3, 60)
    q = f"{nm} has {a} {obj}. {he.capitalize()} buys {k} {grp} with {m} {obj} in each."
    p = b.calc(k, "*", m, f"{nm} buys {{c}} {obj}.")
    x = b.calc(a, "+", p, f"{nm} now has {{c}} {obj}.")
    if b.maybe():
        s = b.n(2, x - 1)
        q += f" {he.capitalize()} gives {s} {obj} to {fr}."
        x = b.calc(x, "-", s, f"After giving some to {fr}, {he} has {{c}} {obj}.")
    return q + f" How many {obj} does {nm} have now?"


def t_chain(b: Builder) -> str:
    (nm, he), (obj, _), (fr, _) = b.pick(NAMES), b.pick(GOODS), b.pick(NAMES)
    x = b.n(20, 500)
    q = f"{nm} has {x} {obj}."
    for _ in range(b.rng.randint(2, 4)):
        if b.maybe():
            d = b.n(10, 400)
            q += f" {he.capitalize()} gets {d} more from {fr}."
            x = b.calc(x, "+", d, f"After getting more, {he} has {{c}} {obj}.")
        else:
            d = b.n(5, max(5, x - 1))
            q += f" {he.capitalize()} uses {d} of them."
            x = b.calc(x, "-", d, f"After using some, {he} has {{c}} {obj}.")
    return q + f" How many {obj} does {nm} have in the end?"


def t_share(b: Builder) -> str:
    (nm, he), (obj, grp) = b.pick(NAMES), b.pick(GOODS)
    k, m = b.factor(), b.n(4, 80)
    q = f"{nm} has {k} {grp} of {m} {obj}."
    x = b.calc(k, "*", m, f"{nm} has {{c}} {obj}.")
    if b.maybe():
        e = b.n(2, 99)
        q += f" {he.capitalize()} finds {e} more."
        x = b.calc(x, "+", e, f"With the ones {he} found, {he} has {{c}} {obj}.")
    d = b.divisor_of(x)
    b.calc(x, "/", d, f"Each friend gets {{c}} {obj}.")
    return q + f" {he.capitalize()} shares them equally among {d} friends. How many does each get?"


def t_sell(b: Builder) -> str:
    (nm, he), (obj, _) = b.pick(NAMES), b.pick(GOODS)
    a, c = b.n(5, 80), b.n(5, 80)
    q = f"{nm} picks {a} {obj} on Monday and {c} on Tuesday."
    x = b.calc(a, "+", c, f"{nm} has {{c}} {obj}.")
    if b.maybe():
        s = b.n(2, x - 1)
        q += f" {he.capitalize()} drops {s} of them."
        x = b.calc(x, "-", s, f"{he.capitalize()} has {{c}} {obj} left.")
    p = b.factor()
    b.calc(x, "*", p, f"{he.capitalize()} makes {{c}} dollars.")
    return q + f" {he.capitalize()} sells each one for ${p}. How many dollars does {he} make?"


def t_shopping(b: Builder) -> str:
    (nm, he) = b.pick(NAMES)
    i1, i2 = b.rng.sample(ITEMS, 2)
    a, p, c, r = b.factor(), b.n(3, 90), b.factor(), b.n(3, 90)
    q = f"{nm} buys {a} {i1} at ${p} each and {c} {i2} at ${r} each."
    x = b.calc(a, "*", p, f"The {i1} cost {{c}} dollars.")
    y = b.calc(c, "*", r, f"The {i2} cost {{c}} dollars.")
    t = b.calc(x, "+", y, f"In total {he} spends {{c}} dollars.")
    if b.maybe():
        bill = (t // 100 + 1) * 100
        b.calc(bill, "-", t, f"{he.capitalize()} gets {{c}} dollars in change.")
        return q + f" {he.capitalize()} pays with ${bill}. How much change does {he} get?"
    return q + f" How many dollars does {he} spend?"


def t_wages(b: Builder) -> str:
    (nm, he) = b.pick(NAMES)
    h, d, r = b.factor(), b.factor(), b.n(3, 30)
    q = f"{nm} works {h} hours a day for {d} days and earns ${r} an hour."
    x = b.calc(r, "*", h, f"{nm} earns {{c}} dollars a day.")
    x = b.calc(x, "*", d, f"In {d} days {he} earns {{c}} dollars.")
    if b.maybe():
        s = b.n(5, x - 1)
        q += f" {he.capitalize()} spends ${s} on a {b.pick(THINGS)}."
        b.calc(x, "-", s, f"{he.capitalize()} has {{c}} dollars left.")
        return q + f" How many dollars does {he} have left?"
    return q + f" How many dollars does {he} earn?"


def t_travel(b: Builder) -> str:
    veh = b.pick(("car", "bus", "train", "truck", "van"))
    s, h, e = b.n(20, 90), b.factor(1), b.n(5, 120)
    q = f"A {veh} drives at {s} miles per hour for {h} hours, then {e} more miles."
    x = b.calc(s, "*", h, "First it drives {c} miles.")
    x = b.calc(x, "+", e, "In all it drives {c} miles.")
    if b.maybe():
        trip = b.n(x + 1, x + 400)
        b.calc(trip, "-", x, "There are {c} miles left.")
        return q + f" The trip is {trip} miles long. How many miles are left?"
    return q + " How many miles does it drive?"


def t_hall(b: Builder) -> str:
    rows, cols = b.factor(), b.n(5, 40)
    q = f"A hall has {rows} rows of {cols} chairs."
    x = b.calc(rows, "*", cols, "The hall has {c} chairs.")
    if b.maybe():
        k = b.n(2, 30)
        q += f" {k} chairs are broken and taken away."
        x = b.calc(x, "-", k, "There are {c} chairs left.")
    s = b.n(1, x - 1)
    b.calc(x, "-", s, "So {c} chairs are empty.")
    return q + f" {s} people sit down, one per chair. How many chairs are empty?"


def t_reading(b: Builder) -> str:
    (nm, he) = b.pick(NAMES)
    a, d = b.n(5, 60), b.factor()
    x = b.calc(a, "*", d, f"{nm} reads {{c}} pages.")
    q = f"{nm} reads {a} pages a day for {d} days."
    if b.maybe():
        e = b.n(5, 90)
        q += f" Then {he} reads {e} more pages."
        x = b.calc(x, "+", e, "That makes {c} pages.")
    total = b.n(x + 1, x + 500)
    b.calc(total, "-", x, "There are {c} pages left.")
    return f"A book has {total} pages. " + q + " How many pages are left?"


def t_savings(b: Builder) -> str:
    (nm, he) = b.pick(NAMES)
    a, w = b.n(5, 80), b.factor()
    q = f"{nm} saves ${a} a week for {w} weeks."
    x = b.calc(a, "*", w, f"{nm} saves {{c}} dollars.")
    if b.maybe():
        g = b.n(5, 200)
        q += f" {he.capitalize()} also gets ${g} as a gift."
        x = b.calc(x, "+", g, f"With the gift {he} has {{c}} dollars.")
    c = b.n(5, x - 1)
    b.calc(x, "-", c, f"{he.capitalize()} has {{c}} dollars left.")
    return q + f" {he.capitalize()} buys a {b.pick(THINGS)} for ${c}. How many dollars are left?"


def t_baking(b: Builder) -> str:
    (nm, he) = b.pick(NAMES)
    t, c = b.factor(), b.n(6, 48)
    q = f"{nm} bakes {t} trays of {c} cookies."
    x = b.calc(t, "*", c, f"{nm} bakes {{c}} cookies.")
    rest = "them"
    if b.maybe():
        e = b.n(1, 20)
        q += f" {he.capitalize()} eats {e} of them."
        x = b.calc(x, "-", e, "{c} cookies are left.")
        rest = "the rest"
    k = b.divisor_of(x)
    b.calc(x, "/", k, f"{he.capitalize()} fills {{c}} bags.")
    return q + f" {he.capitalize()} packs {rest} into bags of {k}. How many bags does {he} fill?"


def t_farm(b: Builder) -> str:
    birds, beasts = b.pick(("chickens", "ducks", "geese")), b.pick(("cows", "goats", "pigs"))
    c, w = b.n(3, 150), b.n(3, 150)
    q = f"A farm has {c} {birds} and {w} {beasts}."
    if b.maybe():
        h = b.n(2, 60)
        q += f" It also has {h} horses."
        w = b.calc(w, "+", h, "There are {c} four-legged animals.")
    x = b.calc(c, "*", 2, f"The {birds} have {{c}} legs.")
    y = b.calc(w, "*", 4, "The four-legged animals have {c} legs.")
    b.calc(x, "+", y, "Together they have {c} legs.")
    return q + " How many legs do the animals have in total?"


def t_garden(b: Builder) -> str:
    (nm, he), plant = b.pick(NAMES), b.pick(PLANTS)
    r, p = b.factor(), b.n(4, 50)
    q = f"{nm} plants {r} rows of {p} {plant}."
    x = b.calc(r, "*", p, f"{nm} plants {{c}} {plant}.")
    if b.maybe():
        k = b.n(1, min(30, x - 1))
        q += f" {k} of them die."
        x = b.calc(x, "-", k, f"{{c}} {plant} are left.")
    e = b.n(3, 120)
    b.calc(x, "+", e, f"Now there are {{c}} {plant}.")
    return q + f" Then {he} plants {e} more. How many {plant} are there now?"


def t_points(b: Builder) -> str:
    (nm, he) = b.pick(NAMES)
    a, p, e = b.n(2, 40), b.factor(), b.n(5, 150)
    q = f"In a game {nm} scores {a} goals worth {p} points each and gets {e} bonus points."
    x = b.calc(a, "*", p, "The goals give {c} points.")
    x = b.calc(x, "+", e, f"With the bonus {he} has {{c}} points.")
    if b.maybe():
        f_ = b.n(2, x - 1)
        q += f" {he.capitalize()} loses {f_} points for fouls."
        b.calc(x, "-", f_, f"After the fouls {he} has {{c}} points.")
    return q + f" How many points does {he} have?"


def t_tickets(b: Builder) -> str:
    a, c = b.n(8, 60), b.n(3, 40)
    n, m = b.factor(1), b.factor(1)
    q = f"Adult tickets cost ${a} and child tickets cost ${c}. A family buys {n} adult and {m} " \
        "child tickets."
    x = b.calc(n, "*", a, "The adult tickets cost {c} dollars.")
    y = b.calc(m, "*", c, "The child tickets cost {c} dollars.")
    t = b.calc(x, "+", y, "Together they cost {c} dollars.")
    if b.maybe():
        d = b.n(2, min(50, t - 1))
        b.calc(t, "-", d, "With the coupon they pay {c} dollars.")
        return q + f" They have a ${d} coupon. How many dollars do they pay?"
    return q + " How many dollars do they pay?"


def t_times_as_many(b: Builder) -> str:
    (nm, _), (fr, _), (fr2, _) = b.rng.sample(NAMES, 3)
    obj = b.pick(GOODS)[0]
    a, k = b.n(5, 90), b.factor()
    q = f"{nm} has {a} {obj}. {fr} has {k} times as many."
    x = b.calc(a, "*", k, f"{fr} has {{c}} {obj}.")
    if b.maybe():
        d = b.n(1, x - 1)
        q += f" {fr2} has {d} fewer than {fr}."
        y = b.calc(x, "-", d, f"{fr2} has {{c}} {obj}.")
        t = b.calc(a, "+", x, f"{nm} and {fr} have {{c}} {obj}.")
        b.calc(t, "+", y, f"All three have {{c}} {obj}.")
        return q + f" How many {obj} do the three have together?"
    b.calc(a, "+", x, f"Together they have {{c}} {obj}.")
    return q + f" How many {obj} do they have together?"


TEMPLATES = {f.__name__[2:]: f for f in (
    t_groups, t_chain, t_share, t_sell, t_shopping, t_wages, t_travel, t_hall, t_reading,
    t_savings, t_baking, t_farm, t_garden, t_points, t_tickets, t_times_as_many)}
