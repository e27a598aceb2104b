"""Synthetic e-commerce traffic: sessions of clickstream, cart, search and purchase events.

The world: a catalogue of products in categories with log-normal prices and Zipf-like
popularity; users with a few preferred categories, a usual device, a purchase propensity
and a stable A/B variant. A session lands on the site, sometimes searches, views products
(mostly from one category the user likes), adds some to the cart, removes a few and
sometimes checks out; the treatment variant checks out a little more often. Everything is
drawn per chunk with vectorised numpy and encoded column-wise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

from lakehouse.catalog import Domain
from lakehouse.schemas import VOCABULARIES
from streaming.generators import jsonl
from streaming.generators.common import (
    US,
    Chunk,
    ChunkedGenerator,
    Timeline,
    TimeOrder,
    pick_within,
    stable_hash,
)
from streaming.generators.jsonl import Codes, Floats, Frame, Ints, Vocabulary, hex_ids

# name, median price (USD), search terms
CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("electronics", 120.0, ("headphones", "laptop", "smartphone", "tablet", "smartwatch")),
    ("books", 15.0, ("novel", "cookbook", "biography", "fantasy series", "travel guide")),
    ("home", 40.0, ("lamp", "curtains", "rug", "bedding", "storage box")),
    ("kitchen", 35.0, ("coffee maker", "knife set", "blender", "frying pan", "air fryer")),
    ("toys", 25.0, ("lego", "puzzle", "doll", "rc car", "board game")),
    ("sports", 45.0, ("yoga mat", "dumbbells", "tennis racket", "bike helmet", "jump rope")),
    ("beauty", 20.0, ("lipstick", "moisturizer", "perfume", "shampoo", "sunscreen")),
    ("fashion", 35.0, ("dress", "jeans", "t-shirt", "jacket", "hoodie")),
    ("shoes", 70.0, ("sneakers", "boots", "sandals", "running shoes", "slippers")),
    ("garden", 30.0, ("plant pot", "garden hose", "lawn mower", "seeds", "bbq grill")),
    ("grocery", 8.0, ("coffee beans", "olive oil", "pasta", "green tea", "snacks")),
    ("pet", 20.0, ("dog food", "cat litter", "dog toy", "aquarium", "cat tree")),
    ("automotive", 40.0, ("car charger", "dash cam", "floor mats", "motor oil", "wipers")),
    ("music", 18.0, ("vinyl", "guitar strings", "ukulele", "keyboard", "microphone")),
    ("games", 45.0, ("video game", "gaming mouse", "controller", "headset", "console")),
    ("office", 15.0, ("notebook", "desk chair", "printer paper", "pens", "monitor stand")),
    ("baby", 25.0, ("diapers", "stroller", "baby monitor", "car seat", "onesie")),
    ("jewelry", 90.0, ("necklace", "earrings", "ring", "bracelet", "watch")),
    ("health", 18.0, ("vitamins", "protein powder", "thermometer", "first aid kit", "massager")),
    ("outdoor", 60.0, ("tent", "sleeping bag", "hiking backpack", "camping stove", "headlamp")),
)
CATEGORY_NAMES = Vocabulary(tuple(name for name, _, _ in CATEGORIES))
QUERY_FORMS = ("{}", "{}", "best {}", "cheap {}", "{} sale", "new {}")
EVENT_TYPES = Vocabulary(VOCABULARIES["clickstream"]["event_type"])
PAGES = Vocabulary(VOCABULARIES["clickstream"]["page"])
DEVICES = Vocabulary(VOCABULARIES["clickstream"]["device"])
DEVICE_WEIGHTS = np.array([0.5, 0.32, 0.18])
MOBILE = (1, 2)  # ios, android
MOBILE_SHARE = 0.5
REFERRERS = Vocabulary(("www.google.com", "www.bing.com", "www.facebook.com",
                        "www.instagram.com", "newsletter", "affiliate"))
REFERRER_WEIGHTS = np.array([0.35, 0.05, 0.08, 0.07, 0.1, 0.05])  # the rest (0.30): direct
CART_ACTIONS = Vocabulary(VOCABULARIES["cart_events"]["action"])
PAYMENT_METHODS = Vocabulary(("card", "paypal", "apple_pay", "google_pay", "gift_card"))
PAYMENT_WEIGHTS = np.array([0.58, 0.2, 0.11, 0.08, 0.03])
CURRENCIES = Vocabulary(("USD",))
EXPERIMENTS = Vocabulary(("recs-carousel-v2",))
VARIANTS = Vocabulary(VOCABULARIES["clickstream"]["variant"])
EXPERIMENT_SALT = 20_261_123

# Funnel parameters (per session), chosen so that about 3-4% of sessions convert.
SEARCH_RATE = 0.3
TYPO_RATE = 0.06
SEARCH_CLICK_RATE = 0.6
CATEGORY_PAGE_RATE = 0.3
SESSION_CATEGORY_SHARE = 0.7
CART_RATE = 0.08
REMOVE_RATE = 0.2
CHECKOUT_RATE = 0.16
MEAN_VIEWS = 3.3
MEAN_EVENTS_PER_SESSION = 6.0


@dataclass(frozen=True)
class Catalogue:
    """Products and the structures that sample them by popularity, globally or per category."""

    category: np.ndarray  # category index per product (product id = index + 1)
    price: np.ndarray
    by_category: np.ndarray  # product indices sorted by (category, popularity desc)
    cumulative: np.ndarray  # cumulative popularity over `by_category`, normalised to 1
    lo: np.ndarray  # per category: cumulative mass before its block
    hi: np.ndarray  # per category: cumulative mass at its block's end
    block_end: np.ndarray  # per category: index one past its block in `by_category`

    @property
    def category_mass(self) -> np.ndarray:
        return self.hi - self.lo

    def sample(self, categories: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Products by popularity within the given categories (-1 means any category)."""
        anywhere = categories < 0
        cats = np.where(anywhere, 0, categories)
        lo = np.where(anywhere, 0.0, self.lo[cats])
        hi = np.where(anywhere, 1.0, self.hi[cats])
        idx = np.searchsorted(self.cumulative, lo + u * (hi - lo), side="right")
        limit = np.where(anywhere, self.cumulative.size, self.block_end[cats]) - 1
        return self.by_category[np.minimum(idx, limit)]


def build_catalogue(rng: np.random.Generator, n_products: int, zipf: float) -> Catalogue:
    """Products spread unevenly over categories, log-normal prices, Zipf popularity."""
    shares = rng.dirichlet(np.full(len(CATEGORIES), 4.0))
    category = rng.choice(len(CATEGORIES), size=n_products, p=shares)
    medians = np.array([median for _, median, _ in CATEGORIES])
    raw = rng.lognormal(np.log(medians[category]), 0.55)
    price = np.maximum(np.floor(raw), 0.0) + 0.99
    rank = rng.permutation(n_products) + 1
    weight = rank.astype(np.float64) ** -zipf
    by_category = np.lexsort((-weight, category))
    cumulative = np.cumsum(weight[by_category])
    cumulative /= cumulative[-1]
    block_end = np.searchsorted(category[by_category], np.arange(len(CATEGORIES)), side="right")
    hi = np.where(block_end > 0, cumulative[np.maximum(block_end - 1, 0)], 0.0)
    lo = np.concatenate([[0.0], hi[:-1]])
    return Catalogue(category, price, by_category, cumulative, lo, hi, block_end)


@dataclass(frozen=True)
class Users:
    """Shoppers: preferred categories, usual device, activity, propensity, A/B assignment."""

    preferred: np.ndarray  # (n, 3) category indices
    preference_cdf: np.ndarray  # (n, 2) thresholds choosing among the three
    device: np.ndarray
    activity_cdf: np.ndarray
    propensity: np.ndarray
    enrolled: np.ndarray
    variant: np.ndarray  # 0 control, 1 treatment


def assign_variant(user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(enrolled, variant) per user id, by a stable hash: 80% enrolled, split 50/50."""
    h = stable_hash(user_ids, EXPERIMENT_SALT)
    enrolled = (h % np.uint64(10)) < np.uint64(8)
    variant = ((h >> np.uint64(32)) & np.uint64(1)).astype(np.int64)
    return enrolled, variant


def build_users(rng: np.random.Generator, n_users: int, catalogue: Catalogue) -> Users:
    """Users whose favourite categories follow category popularity, so tastes cluster."""
    mass = catalogue.category_mass / catalogue.category_mass.sum()
    preferred = rng.choice(len(CATEGORIES), size=(n_users, 3), p=mass)
    weights = rng.dirichlet([6.0, 3.0, 1.5], size=n_users)
    preference_cdf = np.cumsum(weights, axis=1)[:, :2]
    device = rng.choice(len(DEVICES), size=n_users, p=DEVICE_WEIGHTS)
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity_cdf = np.cumsum(activity) / activity.sum()
    propensity = rng.lognormal(0.0, 0.4, n_users)
    enrolled, variant = assign_variant(np.arange(1, n_users + 1))
    return Users(preferred, preference_cdf, device, activity_cdf, propensity, enrolled, variant)


@dataclass(frozen=True)
class Sessions:
    """Per-session counts of each funnel step, drawn before any event is materialised."""

    user: np.ndarray
    views: np.ndarray
    search: np.ndarray
    category_pages: np.ndarray
    adds: np.ndarray
    removes: np.ndarray
    buys: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        return self.adds - self.removes

    @property
    def events(self) -> np.ndarray:
        checkout = np.where(self.buys, 2 + self.kept, 0)
        return (1 + self.search + self.views + self.category_pages + self.adds + self.removes
                + checkout)

    def head(self, n: int) -> Sessions:
        return Sessions(*(getattr(self, f)[:n] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Queries:
    """Search queries per category (term x form), then one misspelling per term."""

    vocabulary: Vocabulary
    start: np.ndarray  # per category, then the total: its block of correct queries
    typo_start: np.ndarray  # the same for misspellings, which follow all correct queries

    @classmethod
    def build(cls) -> Queries:
        queries: list[str] = []
        typos: list[str] = []
        start, typo_start = [], []
        for _, _, terms in CATEGORIES:
            start.append(len(queries))
            typo_start.append(len(typos))
            for term in terms:
                queries.extend(form.format(term) for form in QUERY_FORMS)
                cut = len(term) // 2
                typos.append(term[:cut] + term[cut + 1 :])
        start.append(len(queries))
        typo_start.append(len(typos))
        return cls(Vocabulary((*queries, *typos)), np.array(start),
                   len(queries) + np.array(typo_start))

    def sample(self, category: np.ndarray, typo: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Codes of a query of each category; a misspelling where `typo` is set."""
        first = np.where(typo, self.typo_start[category], self.start[category])
        last = np.where(typo, self.typo_start[category + 1], self.start[category + 1])
        return first + (u * (last - first)).astype(np.int64)


class EcommerceGenerator(ChunkedGenerator):
    """Clickstream-heavy shop traffic with a real funnel, tastes and an A/B effect.

    Options: `n_products` (5,000), `n_users` (20,000), `zipf_exponent` (1.1),
    `treatment_uplift` (0.15: relative increase of the checkout probability in the
    treatment variant), `late_rate` (0.002: share of mobile clickstream events delivered
    one to three chunks late, as an app does after being offline).
    """

    domain: ClassVar[Domain] = Domain.ECOMMERCE
    keys: ClassVar[dict[str, str]] = {
        "clickstream": "user_id", "cart_events": "user_id", "search": "user_id",
        "purchases": "user_id",
    }

    def __init__(self, *, seed: int = 42, start: datetime | None = None,
                 span: timedelta = timedelta(days=1), live: bool = False,
                 n_products: int = 5_000, n_users: int = 20_000, zipf_exponent: float = 1.1,
                 treatment_uplift: float = 0.15, late_rate: float = 0.002) -> None:
        super().__init__(seed=seed, start=start, span=span, live=live)
        if n_products < len(CATEGORIES) or n_users < 1:
            raise ValueError(f"need n_products >= {len(CATEGORIES)} and n_users >= 1")
        if not 0 <= late_rate < 0.5 or treatment_uplift <= -1:
            raise ValueError("late_rate must be in [0, 0.5) and treatment_uplift > -1")
        self.treatment_uplift = treatment_uplift
        self.late_rate = late_rate
        self.catalogue = build_catalogue(self.rng(1), n_products, zipf_exponent)
        self.users = build_users(self.rng(2), n_users, self.catalogue)
        self.queries = Queries.build()
        self.category_size = np.bincount(self.catalogue.category, minlength=len(CATEGORIES))

    def _frames(self, chunks: list[Chunk]) -> Iterator[dict[str, Frame]]:
        timeline = self.timeline(diurnal=True)
        order = TimeOrder()
        pending: list[tuple[int, Frame]] = []
        for chunk in chunks:
            rng = self.rng(100, chunk.index)
            final = chunk is chunks[-1]
            horizon = None if final else int(timeline.at(np.array([chunk.last]))[0])
            frames = order.release(self._chunk(rng, chunk, timeline), horizon, rng)
            late, frames["clickstream"] = self._split_late(rng, frames["clickstream"])
            if jsonl.rows(late):
                pending.append((chunk.index + int(rng.integers(1, 4)), late))
            due = [frame for release, frame in pending if final or release <= chunk.index]
            pending = [(r, f) for r, f in pending if not (final or r <= chunk.index)]
            if due:
                frames["clickstream"] = jsonl.concat([frames["clickstream"], *due])
            yield frames

    def _split_late(self, rng: np.random.Generator, frame: Frame) -> tuple[Frame, Frame]:
        """Hold back a few mobile clickstream events, to be delivered in a later chunk."""
        device = frame["device"]
        assert isinstance(device, Codes)
        mobile = np.isin(device.codes, MOBILE)
        late = mobile & (rng.random(mobile.size) < self.late_rate / MOBILE_SHARE)
        return jsonl.take(frame, late), jsonl.take(frame, ~late)

    def _draw_sessions(self, rng: np.random.Generator, n: int) -> Sessions:
        users = self.users
        user = np.minimum(np.searchsorted(users.activity_cdf, rng.random(n)),
                          users.activity_cdf.size - 1)
        views = np.minimum(rng.geometric(1.0 / MEAN_VIEWS, n), 30)
        search = (rng.random(n) < SEARCH_RATE).astype(np.int64)
        category_pages = rng.binomial(views, CATEGORY_PAGE_RATE)
        propensity = users.propensity[user]
        adds = rng.binomial(views, np.minimum(CART_RATE * propensity, 0.6))
        removes = rng.binomial(adds, REMOVE_RATE)
        uplift = np.where(users.enrolled[user] & (users.variant[user] == 1),
                          1.0 + self.treatment_uplift, 1.0)
        p_buy = np.minimum(CHECKOUT_RATE * propensity * uplift, 0.9)
        buys = (adds > removes) & (rng.random(n) < p_buy)
        return Sessions(user, views, search, category_pages, adds, removes, buys)

    def _chunk(self, rng: np.random.Generator, chunk: Chunk, timeline: Timeline
               ) -> dict[str, Frame]:
        """Exactly `chunk.size` events: whole sessions, the last one cut short if needed."""
        n = int(chunk.size / MEAN_EVENTS_PER_SESSION * 1.25) + 16
        while True:
            sessions = self._draw_sessions(rng, n)
            total = np.cumsum(sessions.events)
            if total[-1] >= chunk.size:
                break
            n *= 2
        last = int(np.searchsorted(total, chunk.size))
        builder = _SessionBuilder(self, rng, sessions.head(last + 1), chunk, timeline)
        return builder.frames(excess=int(total[last] - chunk.size))


Step = dict[str, np.ndarray]
"""Events of one funnel step, column-wise: always `session` and `pos`, plus payload arrays."""


def _concat(steps: list[Step], fields: tuple[str, ...]) -> Step:
    return {f: np.concatenate([step[f] for step in steps]) for f in fields}


class _SessionBuilder:
    """Materialises the events of a block of sessions into one frame per topic.

    Each funnel step gets a position in its session (landing 0, search 0.5, view j at 1+j,
    its category page just before and its cart add just after, checkout after the last
    view); times are the session start plus position times the session's pace, so every
    session's events are in funnel order.
    """

    def __init__(self, gen: EcommerceGenerator, rng: np.random.Generator, sessions: Sessions,
                 chunk: Chunk, timeline: Timeline) -> None:
        self.gen, self.rng, self.s, self.timeline = gen, rng, sessions, timeline
        users, n = gen.users, sessions.user.size
        self.n = n
        fractions = chunk.first + np.sort(rng.random(n)) * (chunk.last - chunk.first)
        self.pace = rng.lognormal(np.log(30 * US), 0.5, n)
        # A session that would run past the end of the span starts earlier instead.
        last_pos = sessions.views + np.where(sessions.buys, 2.1 + 0.01 * sessions.kept, 1.1)
        overrun = timeline.at(fractions) + (last_pos * self.pace).astype(np.int64) - timeline.end_us
        self.start = np.maximum(timeline.at(fractions) - np.maximum(overrun, 0), timeline.start_us)
        slot = (rng.random(n)[:, None] > users.preference_cdf[sessions.user]).sum(axis=1)
        self.category = users.preferred[sessions.user, slot]
        wander = rng.random(n) < 0.1
        self.category[wander] = rng.integers(0, len(CATEGORIES), int(wander.sum()))
        self.device = users.device[sessions.user].copy()
        switch = rng.random(n) < 0.15
        self.device[switch] = rng.integers(0, len(DEVICES), int(switch.sum()))
        referrer = np.searchsorted(np.cumsum(REFERRER_WEIGHTS), rng.random(n), side="right")
        self.referrer = np.where(referrer >= len(REFERRERS), -1, referrer)
        self.session_id = hex_ids(rng, n, 8)
        self.order_id = hex_ids(rng, n, 8)
        self.payment = rng.choice(len(PAYMENT_METHODS), size=n, p=PAYMENT_WEIGHTS)
        enrolled = users.enrolled[sessions.user]
        self.experiment = np.where(enrolled, 0, -1)
        self.variant = np.where(enrolled, users.variant[sessions.user], -1)

    def frames(self, excess: int) -> dict[str, Frame]:
        steps = self._steps()
        if excess:
            steps = self._cut_last_session(steps, excess)
        click_fields = ("session", "pos", "page", "product", "category")
        clicks = _concat([steps[k] for k in ("landing", "category_page", "view", "cart_page",
                                             "checkout_page")], click_fields)
        cart_fields = ("session", "pos", "action", "product", "quantity")
        cart = _concat([steps["add"], steps["remove"]], cart_fields)
        return {
            "clickstream": self._clickstream(clicks),
            "cart_events": self._cart(cart),
            "search": self._search(steps["search"]),
            "purchases": self._purchases(steps["line"]),
        }

    def _steps(self) -> dict[str, Step]:
        rng, s, n = self.rng, self.s, self.n
        catalogue = self.gen.catalogue
        none = -np.ones(n, dtype=np.int64)

        landing_page = np.where(rng.random(n) < 0.6, 0, 1)  # home or a category page
        landing = {"session": np.arange(n), "pos": np.zeros(n), "page": landing_page,
                   "product": none, "category": np.where(landing_page == 1, self.category, -1)}

        # Searches; a click leads to the session's first product view.
        searched = s.search.astype(bool)
        typo = searched & (rng.random(n) < TYPO_RATE)
        clicked = searched & ~typo & (rng.random(n) < SEARCH_CLICK_RATE)

        # Product views: mostly from the session's category, the rest by global popularity.
        session = np.repeat(np.arange(n), s.views)
        first_view = np.concatenate([[0], np.cumsum(s.views)[:-1]])
        ordinal = np.arange(session.size) - first_view[session]
        own = (rng.random(session.size) < SESSION_CATEGORY_SHARE) | (
            (ordinal == 0) & clicked[session])
        product = catalogue.sample(np.where(own, self.category[session], -1),
                                   rng.random(session.size))
        view = {"session": session, "pos": 1.0 + ordinal, "page": np.full(session.size, 2),
                "product": product, "category": catalogue.category[product]}

        search_session = np.flatnonzero(searched)
        search = {"session": search_session, "pos": np.full(search_session.size, 0.5),
                  "typo": typo[search_session],
                  "clicked": np.where(clicked[search_session],
                                      product[first_view[search_session]], -1)}

        pick = pick_within(session, s.category_pages, rng)
        category_page = {"session": session[pick], "pos": view["pos"][pick] - 0.5,
                         "page": np.ones(int(pick.sum()), dtype=np.int64),
                         "product": -np.ones(int(pick.sum()), dtype=np.int64),
                         "category": view["category"][pick]}

        pick = pick_within(session, s.adds, rng)
        quantity = rng.choice([1, 2, 3], size=int(pick.sum()), p=[0.82, 0.13, 0.05])
        add = {"session": session[pick], "pos": view["pos"][pick] + 0.3,
               "action": np.zeros(int(pick.sum()), dtype=np.int64), "product": product[pick],
               "quantity": quantity}
        removed = pick_within(add["session"], s.removes, rng)
        # A removal happens after its add and before checkout (at views + 1).
        room = s.views[add["session"]] + 0.7 - add["pos"]
        remove_pos = add["pos"] + 0.2 + rng.random(removed.size) * room
        remove = {k: v[removed] for k, v in add.items()}
        remove["pos"], remove["action"] = remove_pos[removed], np.ones(int(removed.sum()),
                                                                      dtype=np.int64)

        buyer = np.flatnonzero(s.buys)
        checkout_pos = s.views[buyer] + 1.0
        page_fields = {"session": buyer, "product": -np.ones(buyer.size, dtype=np.int64),
                       "category": -np.ones(buyer.size, dtype=np.int64)}
        cart_page = {**page_fields, "pos": checkout_pos, "page": np.full(buyer.size, 3)}
        checkout_page = {**page_fields, "pos": checkout_pos + 0.5, "page": np.full(buyer.size, 4)}
        lines = ~removed & s.buys[add["session"]]
        line = {k: v[lines] for k, v in add.items()}
        line_rank = np.arange(line["session"].size) - np.searchsorted(line["session"],
                                                                      line["session"])
        line["pos"] = s.views[line["session"]] + 2.0 + 0.01 * line_rank
        return {"landing": landing, "search": search, "category_page": category_page,
                "view": view, "add": add, "remove": remove, "cart_page": cart_page,
                "checkout_page": checkout_page, "line": line}

    def _cut_last_session(self, steps: dict[str, Step], excess: int) -> dict[str, Step]:
        """Drop the `excess` latest events of the last session, so the chunk is exact."""
        last = self.n - 1
        positions = np.concatenate([st["pos"][st["session"] == last] for st in steps.values()])
        threshold = np.sort(positions)[positions.size - excess]
        cut = {}
        for name, step in steps.items():
            keep = ~((step["session"] == last) & (step["pos"] >= threshold))
            cut[name] = {k: v[keep] for k, v in step.items()}
        return cut

    def _times(self, step: Step) -> np.ndarray:
        """The step's event times (int64 µs): session start plus position times pace."""
        session = step["session"]
        jitter = self.rng.random(session.size) * 0.1
        offset = ((step["pos"] + jitter) * self.pace[session]).astype(np.int64)
        return self.timeline.clamp(self.start[session] + offset)

    def _common(self, session: np.ndarray, times: np.ndarray, experiment: bool = True
                ) -> Frame:
        columns: Frame = {
            "event_id": hex_ids(self.rng, session.size),
            "event_time": jsonl.Times(times),
            "user_id": Ints(self.s.user[session] + 1),
            "session_id": self.session_id.take(session),
        }
        if experiment:
            columns["experiment_id"] = Codes(self.experiment[session], EXPERIMENTS)
            columns["variant"] = Codes(self.variant[session], VARIANTS)
        return columns

    def _clickstream(self, step: Step) -> Frame:
        times = self._times(step)
        product, session = step["product"], step["session"]
        missing = product < 0
        safe = np.where(missing, 0, product)
        columns = self._common(session, times)
        columns.update({
            "event_type": Codes(np.where(missing, 0, 1), EVENT_TYPES),
            "page": Codes(step["page"], PAGES),
            "product_id": Ints(safe + 1, missing),
            "category": Codes(step["category"], CATEGORY_NAMES),
            "price": Floats(self.gen.catalogue.price[safe], 2, missing),
            "device": Codes(self.device[session], DEVICES),
            "referrer": Codes(self.referrer[session], REFERRERS),
        })
        return columns

    def _cart(self, step: Step) -> Frame:
        times = self._times(step)
        product = step["product"]
        columns = self._common(step["session"], times)
        columns.update({
            "action": Codes(step["action"], CART_ACTIONS),
            "product_id": Ints(product + 1),
            "category": Codes(self.gen.catalogue.category[product], CATEGORY_NAMES),
            "quantity": Ints(step["quantity"]),
            "price": Floats(self.gen.catalogue.price[product], 2),
        })
        return columns

    def _search(self, step: Step) -> Frame:
        times = self._times(step)
        session, typo, clicked = step["session"], step["typo"], step["clicked"]
        category = self.category[session]
        found = self.gen.category_size[category] * 0.4 * self.rng.lognormal(0.0, 0.5, session.size)
        results = np.where(typo, 0, np.maximum(1, found.astype(np.int64)))
        queries = self.gen.queries
        columns = self._common(session, times, experiment=False)
        columns.update({
            "query": Codes(queries.sample(category, typo, self.rng.random(session.size)),
                           queries.vocabulary),
            "category": Codes(np.where(typo, -1, category), CATEGORY_NAMES),
            "results_count": Ints(results),
            "clicked_product_id": Ints(np.maximum(clicked, 0) + 1, clicked < 0),
        })
        return columns

    def _purchases(self, step: Step) -> Frame:
        times = self._times(step)
        session, product, quantity = step["session"], step["product"], step["quantity"]
        unit = self.gen.catalogue.price[product]
        columns = self._common(session, times)
        columns.update({
            "order_id": self.order_id.take(session),
            "product_id": Ints(product + 1),
            "category": Codes(self.gen.catalogue.category[product], CATEGORY_NAMES),
            "quantity": Ints(quantity),
            "unit_price": Floats(unit, 2),
            "total_amount": Floats(unit * quantity, 2),
            "currency": Codes(np.zeros(session.size, dtype=np.int64), CURRENCIES),
            "payment_method": Codes(self.payment[session], PAYMENT_METHODS),
        })
        return columns
