"""Synthetic card transactions with injected fraud and a label on every one.

The world: card holders living in real cities, each with one or two cards, a phone or two,
a home IP, a few usual merchant categories (and a few regular merchants in each),
preferred channels and a personal log-normal amount distribution; a few travel during the
run (legitimately abroad), some share a device with a household member, now and then
someone makes a legitimately large purchase, and small app, transit and subscription
payments of a few dollars are common. About `fraud_rate` of the transactions are labelled
fraud (0.15% by default), injected as nine patterns (docs/events.md), from the easy to the
undetectable:

- `velocity_burst`: a stolen card tested then drained, 3-12 online transactions within
  minutes from the fraudster's device;
- `impossible_travel`: a cloned card used in person far away shortly after the holder
  paid at home (the implied speed is well above any airliner's);
- `amount_spike`: one purchase many times the holder's usual amount in a risky category;
- `compromised_device`: one device (malware, an emulator farm) paying with many people's
  cards;
- `mimicry`: card details used from the fraudster's device in the holder's own city, usual
  categories, usual amounts and usual channel, a few payments over a day or two;
- `slow_card_testing`: a few tiny payments spread over hours or days, each from a fresh
  device fingerprint behind a proxy in the holder's country: no burst to see;
- `account_takeover`: the holder's own phone and IP (a remote-access trojan, a hijacked
  session): more payments than usual over a few hours, at new merchants in resale
  categories, at amounts the holder could have spent;
- `familiar_fraud`: someone close to the holder pays with their card and phone, exactly
  as the holder would: indistinguishable from the holder's own payments;
- `friendly_fraud`: the holder's own online payment, disputed as fraud (legit behaviour,
  labelled fraud).

Labels are what chargebacks and reports would say, not the truth: every holder either
disputes fraud on their card or (`UNREPORTED`, 10% of holders) never notices it, so their
fraud stays labelled legit. `label_fraud_pattern` is the simulation's truth (set on every
injected transaction, reported or not); `label_is_fraud` is the label a model learns from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np

from lakehouse.catalog import Domain
from lakehouse.geo import haversine_km
from lakehouse.schemas import FRAUD_PATTERNS, VOCABULARIES
from streaming.generators.common import (
    US,
    Chunk,
    ChunkedGenerator,
    Timeline,
    TimeOrder,
    stable_hash,
)
from streaming.generators.jsonl import (
    Bools,
    Codes,
    Floats,
    Frame,
    Ids,
    Ints,
    IPv4,
    Times,
    Vocabulary,
    hex_ids,
)

# city, country, currency, latitude, longitude, share of card holders living there
CITIES: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("New York", "US", "USD", 40.7128, -74.0060, 8.0),
    ("Los Angeles", "US", "USD", 34.0522, -118.2437, 5.0),
    ("Chicago", "US", "USD", 41.8781, -87.6298, 4.0),
    ("Houston", "US", "USD", 29.7604, -95.3698, 3.0),
    ("Phoenix", "US", "USD", 33.4484, -112.0740, 2.0),
    ("Miami", "US", "USD", 25.7617, -80.1918, 2.0),
    ("Seattle", "US", "USD", 47.6062, -122.3321, 2.0),
    ("Boston", "US", "USD", 42.3601, -71.0589, 2.0),
    ("San Francisco", "US", "USD", 37.7749, -122.4194, 2.0),
    ("Atlanta", "US", "USD", 33.7490, -84.3880, 2.0),
    ("Dallas", "US", "USD", 32.7767, -96.7970, 2.0),
    ("Denver", "US", "USD", 39.7392, -104.9903, 1.5),
    ("Toronto", "CA", "CAD", 43.6532, -79.3832, 2.0),
    ("Vancouver", "CA", "CAD", 49.2827, -123.1207, 1.0),
    ("Mexico City", "MX", "MXN", 19.4326, -99.1332, 1.5),
    ("London", "GB", "GBP", 51.5074, -0.1278, 5.0),
    ("Manchester", "GB", "GBP", 53.4808, -2.2426, 1.5),
    ("Dublin", "IE", "EUR", 53.3498, -6.2603, 1.0),
    ("Paris", "FR", "EUR", 48.8566, 2.3522, 4.0),
    ("Berlin", "DE", "EUR", 52.5200, 13.4050, 3.0),
    ("Munich", "DE", "EUR", 48.1351, 11.5820, 1.5),
    ("Madrid", "ES", "EUR", 40.4168, -3.7038, 2.0),
    ("Barcelona", "ES", "EUR", 41.3874, 2.1686, 1.5),
    ("Rome", "IT", "EUR", 41.9028, 12.4964, 1.5),
    ("Milan", "IT", "EUR", 45.4642, 9.1900, 1.5),
    ("Amsterdam", "NL", "EUR", 52.3676, 4.9041, 1.5),
    ("Warsaw", "PL", "PLN", 52.2297, 21.0122, 1.0),
    ("Stockholm", "SE", "SEK", 59.3293, 18.0686, 1.0),
    ("Istanbul", "TR", "TRY", 41.0082, 28.9784, 0.5),
    ("Tokyo", "JP", "JPY", 35.6762, 139.6503, 1.0),
    ("Seoul", "KR", "KRW", 37.5665, 126.9780, 0.5),
    ("Singapore", "SG", "SGD", 1.3521, 103.8198, 0.5),
    ("Hong Kong", "HK", "HKD", 22.3193, 114.1694, 0.5),
    ("Mumbai", "IN", "INR", 19.0760, 72.8777, 0.5),
    ("Bangalore", "IN", "INR", 12.9716, 77.5946, 0.5),
    ("Dubai", "AE", "AED", 25.2048, 55.2708, 0.5),
    ("Bangkok", "TH", "THB", 13.7563, 100.5018, 0.3),
    ("Sydney", "AU", "AUD", -33.8688, 151.2093, 1.0),
    ("Melbourne", "AU", "AUD", -37.8136, 144.9631, 0.5),
    ("Sao Paulo", "BR", "BRL", -23.5505, -46.6333, 1.0),
    ("Buenos Aires", "AR", "ARS", -34.6037, -58.3816, 0.3),
    ("Bogota", "CO", "COP", 4.7110, -74.0721, 0.3),
    ("Lagos", "NG", "NGN", 6.5244, 3.3792, 0.3),
    ("Johannesburg", "ZA", "ZAR", -26.2041, 28.0473, 0.3),
    ("Cairo", "EG", "EGP", 30.0444, 31.2357, 0.3),
)
CITY_NAMES = Vocabulary(tuple(c[0] for c in CITIES))
COUNTRIES = Vocabulary(tuple(sorted({c[1] for c in CITIES})))
CURRENCIES = Vocabulary(tuple(sorted({c[2] for c in CITIES})))
CITY_COUNTRY = np.array([COUNTRIES.values.index(c[1]) for c in CITIES])
CITY_CURRENCY = np.array([CURRENCIES.values.index(c[2]) for c in CITIES])
CITY_LAT = np.array([c[3] for c in CITIES])
CITY_LON = np.array([c[4] for c in CITIES])
CITY_WEIGHT = np.array([c[5] for c in CITIES]) / sum(c[5] for c in CITIES)
CITY_DISTANCE = haversine_km(CITY_LAT[:, None], CITY_LON[:, None], CITY_LAT[None, :],
                             CITY_LON[None, :])

CATEGORIES = Vocabulary((
    "grocery", "restaurants", "fuel", "retail", "online_retail", "electronics", "travel",
    "entertainment", "pharmacy", "utilities", "jewelry", "gift_cards", "digital_goods",
    "transport",
))
CATEGORY_WEIGHT = np.array([16, 14, 9, 12, 12, 4, 3, 6, 5, 5, 1, 2, 5, 6], dtype=float)
CATEGORY_WEIGHT /= CATEGORY_WEIGHT.sum()
BIG_TICKET = np.array([5, 6, 10])  # electronics, travel, jewelry: legit large purchases
CARD_TESTING = np.array([4, 11, 12])  # online_retail, gift_cards, digital_goods
RESALE = np.array([5, 10, 11])  # electronics, jewelry, gift_cards: easy to resell
MICRO = np.array([7, 12, 13])  # entertainment, digital_goods, transport: apps, fares, streaming
MERCHANTS_PER_CATEGORY = 300
MERCHANTS = Vocabulary(tuple(
    f"m-{category[:4]}-{k:04d}" for category in CATEGORIES.values
    for k in range(MERCHANTS_PER_CATEGORY)
))
CHANNELS = Vocabulary(VOCABULARIES["transactions"]["channel"])
POS, ONLINE, MOBILE = 0, 1, 2
PATTERNS = Vocabulary(FRAUD_PATTERNS)
CODE = {pattern: code for code, pattern in enumerate(FRAUD_PATTERNS)}
# Of the injected transactions, in `FRAUD_PATTERNS` order: fraud that keeps close to the
# holder's habits (mimicry, slow testing, takeover: 44%) is the larger part, as in card
# fraud today; the two kinds no transaction can reveal (familiar, friendly) are 16%.
PATTERN_SHARE = np.array([0.14, 0.07, 0.07, 0.12, 0.18, 0.12, 0.14, 0.06, 0.10])
UNREPORTED = 0.10
"""Share of holders who never notice fraud on their card: their fraud is labelled legit."""
_FRIENDLY_SHARE = PATTERN_SHARE[CODE["friendly_fraud"]]
LABELLED_SHARE = _FRIENDLY_SHARE + (1 - _FRIENDLY_SHARE) * (1 - UNREPORTED)
"""Share of the injected transactions that end up labelled fraud."""
DEFAULT_FRAUD_RATE = 0.0015
DEFAULT_USERS = 10_000
TXNS_PER_USER_DAY = 5.0
LARGE_PURCHASE_RATE = 0.004
MICRO_PAYMENT_RATE = 0.03
NEW_DEVICE_RATE = 0.003
REGULAR_MERCHANTS = 3  # per usual category
REGULAR_SHARE = 0.7  # of a holder's payments in a usual category, at a regular merchant
AIRLINER_KMH = 750.0


@dataclass(frozen=True)
class Population:
    """Card holders and their habits; index i is user id i + 1."""

    home: np.ndarray  # city index
    lat: np.ndarray
    lon: np.ndarray
    cards: np.ndarray  # (n, 2) card index; column 1 repeats column 0 for one-card users
    card_ids: np.ndarray  # S16 per card
    devices: np.ndarray  # (n, 2) S16 device ids; column 1 may repeat column 0
    ip: np.ndarray  # home IPv4 address as uint32
    usual: np.ndarray  # (n, 3) usual merchant categories
    usual_cdf: np.ndarray  # (n, 2)
    channel_cdf: np.ndarray  # (n, 2) over pos, online, mobile
    mu: np.ndarray  # log-normal amount parameters
    sigma: np.ndarray
    activity_cdf: np.ndarray
    traveler: np.ndarray  # bool
    homebodies: np.ndarray  # indices of the users who do not travel
    destination: np.ndarray  # city index (travelers)
    departs: np.ndarray  # int64 µs (travelers)
    arrives: np.ndarray
    unreported: np.ndarray  # bool: never disputes fraud on their card
    merchant_salt: int  # picks each holder's regular merchants


def random_ips(rng: np.random.Generator, n: int) -> np.ndarray:
    """Public-looking IPv4 addresses (uint32) from a few providers' blocks."""
    first = rng.choice([23, 31, 45, 62, 77, 81, 91, 104, 142, 151, 176, 185, 203], n)
    return (first.astype(np.int64) << 24) + rng.integers(1, 1 << 24, n)


def build_population(rng: np.random.Generator, n_users: int, traveler_rate: float,
                     timeline: Timeline) -> Population:
    """Card holders; a few share a household device, a few travel during the run."""
    home = rng.choice(len(CITIES), size=n_users, p=CITY_WEIGHT)
    lat = CITY_LAT[home] + rng.normal(0, 0.05, n_users)
    lon = CITY_LON[home] + rng.normal(0, 0.05, n_users)
    two_cards = rng.random(n_users) < 0.3
    first_card = np.arange(n_users) + np.concatenate([[0], np.cumsum(two_cards)[:-1]])
    cards = np.stack([first_card, first_card + two_cards], axis=1)
    card_ids = hex_ids(rng, int(cards.max()) + 1, 8).values
    primary = hex_ids(rng, n_users, 8).values
    # Households: a few users pay from a family member's phone (same city too).
    household = np.flatnonzero(rng.random(n_users) < 0.05)
    partner = rng.integers(0, n_users, household.size)
    primary[household] = primary[partner]
    home[household] = home[partner]
    lat[household], lon[household] = lat[partner], lon[partner]
    second = np.where(rng.random(n_users) < 0.25, hex_ids(rng, n_users, 8).values, primary)
    usual = rng.choice(len(CATEGORIES), size=(n_users, 3), p=CATEGORY_WEIGHT)
    usual_cdf = np.cumsum(rng.dirichlet([5.0, 3.0, 2.0], size=n_users), axis=1)[:, :2]
    channel_cdf = np.cumsum(rng.dirichlet([5.0, 3.0, 2.0], size=n_users), axis=1)[:, :2]
    mu = rng.normal(np.log(40.0), 0.6, n_users)
    sigma = rng.uniform(0.35, 0.8, n_users)
    activity = rng.lognormal(0.0, 0.8, n_users)
    traveler = rng.random(n_users) < traveler_rate
    destination = rng.choice(len(CITIES), size=n_users, p=CITY_WEIGHT)
    destination = np.where(destination == home, (destination + 7) % len(CITIES), destination)
    departs = timeline.at(rng.uniform(0.05, 0.6, n_users))
    hours = CITY_DISTANCE[home, destination] / AIRLINER_KMH + rng.uniform(1.5, 4.0, n_users)
    arrives = departs + (hours * 3600 * US).astype(np.int64)
    return Population(home, lat, lon, cards, card_ids, np.stack([primary, second], axis=1),
                      random_ips(rng, n_users), usual, usual_cdf, channel_cdf, mu, sigma,
                      np.cumsum(activity) / activity.sum(), traveler, np.flatnonzero(~traveler),
                      destination, departs, arrives, rng.random(n_users) < UNREPORTED,
                      int(rng.integers(1 << 30)))


Txns = dict[str, np.ndarray]
"""Transactions column-wise before encoding: time, user, card, merchant, category, amount,
city, lat, lon, device (S16), ip (uint32), channel, fraud (the label), pattern (code or -1:
the truth)."""


def _merge(parts: list[Txns]) -> Txns:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _recategorise(rng: np.random.Generator, txns: Txns, rows: np.ndarray,
                  category: np.ndarray) -> None:
    """Move transactions `rows` to merchants of `category` (any merchant of it)."""
    txns["category"][rows] = category
    txns["merchant"][rows] = category * MERCHANTS_PER_CATEGORY + rng.integers(
        0, MERCHANTS_PER_CATEGORY, rows.size)


class FraudGenerator(ChunkedGenerator):
    """Card transactions with nine fraud patterns, noisy labels and realistic hard legit cases.

    Options: `n_users` (card holders; default 10,000, or more for large runs so that a
    holder pays about `TXNS_PER_USER_DAY` times a simulated day on average rather than
    hundreds of times, which would make velocity meaningless), `fraud_rate` (0.0015: the
    share of transactions labelled fraud; card fraud is about 0.1-0.2% of transactions),
    `traveler_rate` (0.03: the share of holders who fly abroad during the run).
    """

    domain: ClassVar[Domain] = Domain.FRAUD
    keys: ClassVar[dict[str, str]] = {"transactions": "card_id"}

    def __init__(self, *, seed: int = 42, start: datetime | None = None,
                 span: timedelta = timedelta(days=1), live: bool = False,
                 n_users: int | None = None, fraud_rate: float = DEFAULT_FRAUD_RATE,
                 traveler_rate: float = 0.03) -> None:
        super().__init__(seed=seed, start=start, span=span, live=live)
        if (n_users is not None and n_users < 20) or not 0 <= fraud_rate <= 0.2:
            raise ValueError("need n_users >= 20 and 0 <= fraud_rate <= 0.2")
        if not 0 <= traveler_rate < 1:
            raise ValueError("need 0 <= traveler_rate < 1")
        self.n_users, self.fraud_rate, self.traveler_rate = n_users, fraud_rate, traveler_rate
        # Injected transactions per transaction: some of them will be labelled legit.
        self.case_rate = fraud_rate / LABELLED_SHARE
        self.timeline_ = self.timeline(diurnal=True)
        self._populations: dict[int, Population] = {}
        self.people = self.population(self.users_for(0))
        self.devices = self._compromised_devices(0)

    def users_for(self, n_events: int) -> int:
        """How many card holders a run of `n_events` simulates."""
        if self.n_users is not None:
            return self.n_users
        days = self.span / timedelta(days=1)
        return max(DEFAULT_USERS, math.ceil(n_events / (TXNS_PER_USER_DAY * days)))

    def population(self, n_users: int) -> Population:
        """The card holders of a run with `n_users` holders (built once, then reused)."""
        if n_users not in self._populations:
            self._populations = {n_users: build_population(
                self.rng(1), n_users, self.traveler_rate, self.timeline_)}
        return self._populations[n_users]

    def _frames(self, chunks: list[Chunk]) -> Iterator[dict[str, Frame]]:
        n_events = sum(chunk.size for chunk in chunks)
        self.people = self.population(self.users_for(n_events))
        self.devices = self._compromised_devices(n_events)
        makers = (self._velocity, self._impossible, self._spike, self._compromised,
                  self._mimicry, self._slow_testing, self._takeover, self._familiar,
                  self._friendly)
        done, made = 0, np.zeros(len(PATTERNS), dtype=np.int64)
        order = TimeOrder()
        for chunk in chunks:
            rng = self.rng(100, chunk.index)
            final = chunk is chunks[-1]
            horizon = None if final else int(self.timeline_.at(np.array([chunk.last]))[0])
            done += chunk.size
            due = np.round(round(self.case_rate * done) * PATTERN_SHARE).astype(np.int64) - made
            budget, parts = chunk.size, []
            for pattern, make in enumerate(makers):
                if due[pattern] <= 0:
                    continue
                made_now = make(rng, chunk, int(due[pattern]))
                rows = sum(part["time"].size for part in made_now)
                if rows > budget:  # a tiny last chunk: leave it to legit traffic
                    continue
                parts.extend(made_now)
                budget -= rows
                made[pattern] += sum(int((part["pattern"] == pattern).sum()) for part in made_now)
            parts.append(self._legit(rng, chunk, budget))
            frames = {"transactions": self._frame(rng, _merge(parts))}
            yield order.release(frames, horizon, rng)

    def _compromised_devices(self, n_events: int) -> dict[str, np.ndarray]:
        """A pool sized so that each compromised device pays for about 15 victims."""
        expected = n_events * self.case_rate * PATTERN_SHARE[CODE["compromised_device"]]
        rng = self.rng(3)
        size = max(2, round(expected / 15))
        return {"id": hex_ids(rng, size, 8).values,
                "city": rng.choice(len(CITIES), size=size, p=CITY_WEIGHT),
                "ip": random_ips(rng, size)}

    def _window(self, rng: np.random.Generator, chunk: Chunk, n: int) -> np.ndarray:
        return self.timeline_.at(chunk.first + rng.random(n) * (chunk.last - chunk.first))

    def _spread(self, rng: np.random.Generator, chunk: Chunk, incident: np.ndarray,
                shortest_s: float, longest_s: float) -> np.ndarray:
        """Times of the transactions of incidents (`incident`: sorted incident index per
        transaction): each starts in the chunk and lasts `shortest_s`..`longest_s` seconds
        (cut short by the end of the run), its transactions spread across it in order."""
        k = int(incident[-1]) + 1
        start = self._window(rng, chunk, k)
        lasts = np.minimum(rng.uniform(shortest_s, longest_s, k) * US,
                           self.timeline_.end_us - 1 - start)
        rank = np.arange(incident.size) - np.searchsorted(incident, incident)
        slot = (rank + rng.uniform(0.05, 0.95, incident.size)) / np.bincount(incident)[incident]
        return start[incident] + (slot * lasts[incident]).astype(np.int64)

    def _victims(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Card holders at home (not travelling), by activity."""
        people = self.people
        users = np.searchsorted(people.activity_cdf, rng.random(n))
        users = np.minimum(users, people.activity_cdf.size - 1)
        away = people.traveler[users]
        users[away] = rng.choice(people.homebodies, int(away.sum()))
        return users

    def _card(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        return self.people.cards[users, (rng.random(users.size) < 0.5).astype(np.int64)]

    def _txns(self, rng: np.random.Generator, time: np.ndarray, users: np.ndarray,
              category: np.ndarray, amount: np.ndarray, city: np.ndarray, channel: np.ndarray,
              device: np.ndarray, ip: np.ndarray, pattern: int) -> Txns:
        """Transactions of one pattern (-1: legit); labelled fraud unless the holder never
        notices (friendly fraud is labelled fraud by definition: the holder disputed it)."""
        n = time.size
        jitter = rng.normal(0.0, 0.03, size=(2, n))
        reported = np.full(n, pattern == CODE["friendly_fraud"]) | ~self.people.unreported[users]
        return {
            "time": time, "user": users, "card": self._card(rng, users),
            "merchant": category * MERCHANTS_PER_CATEGORY
            + rng.integers(0, MERCHANTS_PER_CATEGORY, n),
            "category": category, "amount": amount, "city": city,
            "lat": CITY_LAT[city] + jitter[0], "lon": CITY_LON[city] + jitter[1],
            "device": device, "ip": ip, "channel": channel,
            "fraud": (pattern >= 0) & reported, "pattern": np.full(n, pattern),
        }

    def _incidents(self, rng: np.random.Generator, count: int, low: int, high: int
                   ) -> np.ndarray:
        """Incident index of each transaction: whole incidents of low..high transactions,
        as many as it takes to reach `count` (the last one is never cut short)."""
        sizes = rng.integers(low, high + 1, size=count // low + 1)
        whole = int(np.searchsorted(np.cumsum(sizes), count)) + 1
        return np.repeat(np.arange(whole), sizes[:whole])

    def _near_home(self, rng: np.random.Generator, txns: Txns, rows: np.ndarray | None = None
                   ) -> Txns:
        """Place transactions (all, or `rows`) where their holder lives, as own payments are."""
        users = txns["user"] if rows is None else txns["user"][rows]
        where = slice(None) if rows is None else rows
        txns["lat"][where] = self.people.lat[users] + rng.normal(0, 0.02, users.size)
        txns["lon"][where] = self.people.lon[users] + rng.normal(0, 0.02, users.size)
        return txns

    def _velocity(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """A stolen card tested with tiny amounts (most of the time), then drained, within
        minutes, from abroad or from a proxy in the holder's own city."""
        people = self.people
        incident = self._incidents(rng, count, 3, 12)
        count, k = incident.size, int(incident[-1]) + 1
        users = self._victims(rng, k)
        time = self._spread(rng, chunk, incident, 2 * 60, 20 * 60)
        rank = np.arange(count) - np.searchsorted(incident, incident)
        tests = rng.choice(3, size=k, p=[0.3, 0.35, 0.35])[incident]
        amount = np.where(rank < tests, rng.uniform(0.5, 5.0, count),
                          rng.uniform(40.0, 400.0, count))
        abroad = rng.random(k) < 0.5
        city = np.where(abroad, rng.choice(len(CITIES), size=k, p=CITY_WEIGHT),
                        people.home[users])[incident]
        device = hex_ids(rng, k, 8).values[incident]
        ip = random_ips(rng, k)[incident]
        channel = np.where(rng.random(k) < 0.7, ONLINE, MOBILE)[incident]
        category = rng.choice(np.append(CARD_TESTING, 5), size=count)
        txns = self._txns(rng, time, users[incident], category, np.round(amount, 2), city,
                          channel, device, ip, CODE["velocity_burst"])
        txns["card"] = self._card(rng, users)[incident]
        return [txns]

    def _impossible(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """A cloned card used in person far away minutes after the holder paid at home."""
        people = self.people
        incident = self._incidents(rng, count, 1, 3)
        count, k = incident.size, int(incident[-1]) + 1
        users, anchor_time = self._victims(rng, k), self._window(rng, chunk, k)
        home = people.home[users]
        far = CITY_DISTANCE[home] >= 2_500.0
        city = np.argmax(rng.random(far.shape) * far, axis=1)
        card = self._card(rng, users)
        anchor = self._txns(rng, anchor_time, users, people.usual[users, 0],
                            np.round(rng.lognormal(people.mu[users], people.sigma[users]), 2),
                            home, np.full(k, POS), people.devices[users, 0], people.ip[users], -1)
        anchor["card"] = card
        self._near_home(rng, anchor)
        rank = np.arange(count) - np.searchsorted(incident, incident)
        gap = rng.uniform(5.0, 90.0, k)[incident] + rank * rng.uniform(2.0, 20.0, count)
        victims = users[incident]
        amount = np.exp(people.mu[victims]) * rng.uniform(0.5, 4.0, count)
        # The fraudster buys to resell, or blends in with the holder's usual shopping.
        category = np.where(rng.random(count) < 0.6, rng.choice(RESALE, size=count),
                            people.usual[victims, rng.integers(0, 3, count)])
        fraud = self._txns(rng, anchor_time[incident] + (gap * 60 * US).astype(np.int64),
                           victims, category, np.round(amount, 2), city[incident],
                           np.full(count, POS), hex_ids(rng, k, 8).values[incident],
                           people.ip[victims], CODE["impossible_travel"])
        fraud["card"] = card[incident]
        return [anchor, fraud]

    def _spike(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """One online purchase 6-30x the holder's median, often from a new device."""
        people = self.people
        users = self._victims(rng, count)
        new = rng.random(count) < 0.4
        device = np.where(new, hex_ids(rng, count, 8).values, people.devices[users, 0])
        ip = np.where(new, random_ips(rng, count), people.ip[users])
        amount = np.exp(people.mu[users]) * rng.uniform(6.0, 30.0, count)
        channel = np.where(rng.random(count) < 0.8, ONLINE, MOBILE)
        return [self._txns(rng, self._window(rng, chunk, count), users,
                           rng.choice(np.append(RESALE, 6), size=count), np.round(amount, 2),
                           people.home[users], channel, device, ip, CODE["amount_spike"])]

    def _compromised(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """Many holders' cards paying from one of a few compromised devices."""
        people, devices = self.people, self.devices
        users = self._victims(rng, count)
        which = rng.integers(0, devices["id"].size, count)
        amount = np.exp(people.mu[users]) * rng.uniform(0.5, 2.5, count)
        channel = np.where(rng.random(count) < 0.6, MOBILE, ONLINE)
        return [self._txns(rng, self._window(rng, chunk, count), users,
                           rng.choice(np.append(CARD_TESTING, 5), size=count),
                           np.round(amount, 2), devices["city"][which], channel,
                           devices["id"][which], devices["ip"][which],
                           CODE["compromised_device"])]

    def _mimicry(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """Card details used from the fraudster's own device in the holder's city, at the
        holder's usual categories, amounts and channel: one to four payments over a day or
        two. Only the device is new (as a legit new phone's is)."""
        people = self.people
        incident = self._incidents(rng, count, 1, 4)
        count, k = incident.size, int(incident[-1]) + 1
        victims = self._victims(rng, k)
        users = victims[incident]
        slot = (rng.random(count)[:, None] > people.usual_cdf[users]).sum(axis=1)
        channel = (rng.random(count)[:, None] > people.channel_cdf[users]).sum(axis=1)
        txns = self._txns(
            rng, self._spread(rng, chunk, incident, 2 * 3600, 36 * 3600), users,
            people.usual[users, slot],
            np.round(rng.lognormal(people.mu[users], people.sigma[users]), 2),
            people.home[users], channel, hex_ids(rng, k, 8).values[incident],
            random_ips(rng, k)[incident], CODE["mimicry"])
        txns["card"] = self._card(rng, victims)[incident]
        return [self._near_home(rng, txns)]

    def _slow_testing(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """A card's details checked with two to six tiny online payments spread over 4-48
        hours, each from a fresh device fingerprint (an emulator), mostly behind a proxy in
        the holder's own city: never a burst, never abroad for most."""
        people = self.people
        incident = self._incidents(rng, count, 2, 6)
        count, k = incident.size, int(incident[-1]) + 1
        victims = self._victims(rng, k)
        users = victims[incident]
        amount = np.where(rng.random(count) < 0.3, 1.0, rng.uniform(0.5, 4.99, count))
        proxy = rng.random(k) < 0.7
        city = np.where(proxy, people.home[victims],
                        rng.choice(len(CITIES), size=k, p=CITY_WEIGHT))[incident]
        txns = self._txns(
            rng, self._spread(rng, chunk, incident, 4 * 3600, 48 * 3600), users,
            rng.choice(np.append(CARD_TESTING, 7), size=count), np.round(amount, 2), city,
            np.where(rng.random(count) < 0.9, ONLINE, MOBILE), hex_ids(rng, count, 8).values,
            random_ips(rng, count), CODE["slow_card_testing"])
        txns["card"] = self._card(rng, victims)[incident]
        return [txns]

    def _takeover(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """The holder's own phone, IP and place, in the fraudster's hands: three to ten
        payments within half an hour to six hours, at new merchants in resale and digital
        goods categories, at 0.8-5x the holder's median. Device and geography say nothing."""
        people = self.people
        incident = self._incidents(rng, count, 3, 10)
        count, k = incident.size, int(incident[-1]) + 1
        victims = self._victims(rng, k)
        users = victims[incident]
        txns = self._txns(
            rng, self._spread(rng, chunk, incident, 30 * 60, 6 * 3600), users,
            rng.choice(np.append(RESALE, 12), size=count),
            np.round(np.exp(people.mu[users]) * rng.uniform(0.8, 5.0, count), 2),
            people.home[users], np.where(rng.random(k) < 0.7, MOBILE, ONLINE)[incident],
            people.devices[users, 0], people.ip[users], CODE["account_takeover"])
        txns["card"] = self._card(rng, victims)[incident]
        return [self._near_home(rng, txns)]

    def _familiar(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """Someone close to the holder paying with their card and phone exactly as the
        holder would: drawn from the holder's own habits, so undetectable."""
        users = self._victims(rng, count)
        return [self._everyday(rng, self._window(rng, chunk, count), users,
                               CODE["familiar_fraud"])]

    def _friendly(self, rng: np.random.Generator, chunk: Chunk, count: int) -> list[Txns]:
        """The holder's own online purchase, somewhat above their usual amount, later
        disputed as fraud: legitimate in every respect but the label."""
        users = self._victims(rng, count)
        txns = self._everyday(rng, self._window(rng, chunk, count), users,
                              CODE["friendly_fraud"])
        txns["channel"][txns["channel"] == POS] = ONLINE
        txns["amount"] = np.round(txns["amount"] * rng.uniform(1.0, 3.0, count), 2)
        return [txns]

    def _everyday(self, rng: np.random.Generator, time: np.ndarray, users: np.ndarray,
                  pattern: int) -> Txns:
        """What `users` would pay at `time` by habit: their usual categories (mostly at
        their regular merchants), amounts and channels, from their own devices and IP,
        where they live or where they have travelled to."""
        people = self.people
        n = users.size
        abroad = people.traveler[users] & (time >= people.arrives[users])
        city = np.where(abroad, people.destination[users], people.home[users])
        slot = (rng.random(n)[:, None] > people.usual_cdf[users]).sum(axis=1)
        category = people.usual[users, slot]
        other = rng.random(n) < 0.15
        category[other] = rng.choice(len(CATEGORIES), size=int(other.sum()), p=CATEGORY_WEIGHT)
        amount = rng.lognormal(people.mu[users], people.sigma[users])
        channel = (rng.random(n)[:, None] > people.channel_cdf[users]).sum(axis=1)
        device = people.devices[users, (rng.random(n) < 0.2).astype(np.int64)]
        txns = self._txns(rng, time, users, category, np.round(amount, 2), city, channel,
                          device, people.ip[users], pattern)
        regular = ~other & (rng.random(n) < REGULAR_SHARE)
        which = rng.integers(0, REGULAR_MERCHANTS, int(regular.sum()))
        key = (users[regular] * 3 + slot[regular]) * REGULAR_MERCHANTS + which
        txns["merchant"][regular] = category[regular] * MERCHANTS_PER_CATEGORY + (
            stable_hash(key, people.merchant_salt) % np.uint64(MERCHANTS_PER_CATEGORY)
        ).astype(np.int64)
        return self._near_home(rng, txns, np.flatnonzero(~abroad))

    def _legit(self, rng: np.random.Generator, chunk: Chunk, n: int) -> Txns:
        """Everyday spending, travellers abroad, the odd big purchase and many small app,
        fare and subscription payments, all legitimate."""
        people = self.people
        time = self._window(rng, chunk, n)
        users = np.minimum(np.searchsorted(people.activity_cdf, rng.random(n)),
                           people.activity_cdf.size - 1)
        # Nobody pays while in the air: move in-flight picks to someone at home.
        flying = people.traveler[users] & (time >= people.departs[users]) & (
            time < people.arrives[users])
        users[flying] = rng.choice(people.homebodies, int(flying.sum()))
        txns = self._everyday(rng, time, users, -1)
        large = np.flatnonzero(rng.random(n) < LARGE_PURCHASE_RATE)
        txns["amount"][large] = np.round(
            txns["amount"][large] * rng.uniform(4.0, 15.0, large.size), 2)
        _recategorise(rng, txns, large, rng.choice(BIG_TICKET, size=large.size))
        micro = np.flatnonzero(rng.random(n) < MICRO_PAYMENT_RATE)
        txns["amount"][micro] = np.where(rng.random(micro.size) < 0.4, 0.99,
                                         np.round(rng.uniform(1.0, 4.99, micro.size), 2))
        _recategorise(rng, txns, micro, rng.choice(MICRO, size=micro.size))
        new = rng.random(n) < NEW_DEVICE_RATE
        txns["device"][new] = hex_ids(rng, int(new.sum()), 8).values
        return txns

    def _frame(self, rng: np.random.Generator, t: Txns) -> Frame:
        n = t["time"].size
        return {
            "event_id": hex_ids(rng, n),
            "event_time": Times(self.timeline_.clamp(t["time"])),
            "user_id": Ints(t["user"] + 1),
            "card_id": Ids(self.people.card_ids[t["card"]]),
            "merchant_id": Codes(t["merchant"], MERCHANTS),
            "merchant_category": Codes(t["category"], CATEGORIES),
            "amount": Floats(t["amount"], 2),
            "currency": Codes(CITY_CURRENCY[self.people.home[t["user"]]], CURRENCIES),
            "country": Codes(CITY_COUNTRY[t["city"]], COUNTRIES),
            "city": Codes(t["city"], CITY_NAMES),
            "latitude": Floats(t["lat"], 4),
            "longitude": Floats(t["lon"], 4),
            "device_id": Ids(t["device"]),
            "ip_address": IPv4(t["ip"], t["channel"] == POS),
            "channel": Codes(t["channel"], CHANNELS),
            "label_is_fraud": Bools(t["fraud"]),
            "label_fraud_pattern": Codes(t["pattern"], PATTERNS),
        }
