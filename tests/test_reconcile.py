"""The warm pool's pure reconciler: no Redis, no HTTP, no clock."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hathora_async._reconcile import (
    CreateIntent,
    ProcessRecord,
    RegionCounts,
    Rules,
    exit_stops,
    match_strays,
    reconcile,
    record_of,
    regions_to_list,
)
from hathora_async.models import ProcessStatus, ProcessV2, Region

S = ProcessStatus
TOKYO, LONDON, DALLAS = Region.TOKYO, Region.LONDON, Region.DALLAS
NOW = 10_000.0


def rec(
    pid: str,
    status: ProcessStatus = S.RUNNING,
    *,
    region: Region = TOKYO,
    rooms: int = 0,
    created: float = 0.0,
    missing: float | None = None,
) -> ProcessRecord:
    return ProcessRecord(pid, region, status, rooms, created, NOW, missing)


def recs(*records: ProcessRecord) -> dict[str, ProcessRecord]:
    return {r.process_id: r for r in records}


def intent(
    iid: str, *, region: Region = TOKYO, sent: float = NOW, server: float | None = None
) -> CreateIntent:
    return CreateIntent(iid, region, sent, 1, server)


# -- counting and topping up ---------------------------------------------------


def test_empty_pool_creates_its_targets() -> None:
    actions = reconcile(Rules({TOKYO: 2, LONDON: 1}), {}, [], now=NOW)
    assert actions.creates == {TOKYO: 2, LONDON: 1}
    assert actions.stops == actions.adoptions == actions.drops == actions.expired == ()
    assert actions.counts == {TOKYO: RegionCounts(), LONDON: RegionCounts()}


def test_idle_and_starting_are_capacity_busy_is_not() -> None:
    records = recs(
        rec("idle"),
        rec("boot", S.STARTING),
        rec("match", rooms=2),
        rec("booting-with-room", S.STARTING, rooms=1),
        rec("drain", S.DRAINING),
        rec("future", ProcessStatus("hibernating")),
    )
    actions = reconcile(Rules({TOKYO: 4}), records, [], now=NOW)
    assert actions.counts[TOKYO] == RegionCounts(starting=1, idle=1, busy=4)
    assert actions.creates == {TOKYO: 2}
    assert actions.stops == ()  # busy and starting processes are never trimmed


def test_in_flight_creates_are_capacity_and_never_matched() -> None:
    flying = [intent("a"), intent("b")]
    listing = {TOKYO: [rec("p1", created=NOW)]}
    actions = reconcile(
        Rules({TOKYO: 3}), {}, flying, now=NOW, in_flight={"a", "b"}, listings=listing
    )
    assert actions.creates == {TOKYO: 1}
    assert actions.adoptions == ()
    assert actions.look == frozenset()
    assert regions_to_list(flying, {"a", "b"}) == frozenset()
    assert regions_to_list(flying, {"a"}) == {TOKYO}


@pytest.mark.parametrize("status", [S.FAILED, S.STOPPING, S.STOPPED])
def test_an_ended_process_is_dropped_counted_failed_and_replaced(status: ProcessStatus) -> None:
    actions = reconcile(Rules({TOKYO: 1}), recs(rec("p1", status)), [], now=NOW, failed={TOKYO: 2})
    assert [(d.process_id, d.reason) for d in actions.drops] == [("p1", "ended")]
    assert actions.counts[TOKYO] == RegionCounts(failed=3)
    assert actions.creates == {TOKYO: 1}


def test_a_missing_process_keeps_its_last_state_until_given_up() -> None:
    rules = Rules({TOKYO: 1}, give_up_missing=60)
    lagging = recs(rec("p1", S.STARTING, missing=NOW - 59))
    actions = reconcile(rules, lagging, [], now=NOW)
    assert actions.drops == ()
    assert actions.counts[TOKYO] == RegionCounts(starting=1)
    assert actions.creates == {}  # a 404 right after a create is lag: no second create

    gone = recs(rec("p1", S.STARTING, missing=NOW - 60))
    actions = reconcile(rules, gone, [], now=NOW)
    assert [(d.process_id, d.reason) for d in actions.drops] == [("p1", "missing")]
    assert actions.counts[TOKYO] == RegionCounts(failed=1)
    assert actions.creates == {TOKYO: 1}


def test_regions_with_records_but_no_target_are_counted_and_drained() -> None:
    records = recs(rec("t1"), rec("l1", region=LONDON), rec("l2", S.STARTING, region=LONDON))
    actions = reconcile(Rules({TOKYO: 1}), records, [], now=NOW)
    assert actions.counts[LONDON] == RegionCounts(starting=1, idle=1)
    assert actions.creates == {}
    assert actions.stops == ("l1",)  # no target: its limit is 0, its starting one waits


# -- trimming --------------------------------------------------------------------


def test_trims_oldest_idle_first_above_the_limit() -> None:
    records = recs(
        rec("young", created=30),
        rec("old", created=10),
        rec("mid-b", created=20),
        rec("mid-a", created=20),
        rec("busy-old", created=1, rooms=1),
        rec("boot-old", S.STARTING, created=1),
    )
    actions = reconcile(Rules({TOKYO: 1}, {TOKYO: 2}), records, [], now=NOW)
    assert actions.stops == ("old", "mid-b")  # ties keep the records' order (creation order)
    assert actions.creates == {}


def test_limit_defaults_to_the_target_and_cannot_be_below_it() -> None:
    records = recs(*(rec(f"p{i}", created=i) for i in range(4)))
    assert reconcile(Rules({TOKYO: 3}), records, [], now=NOW).stops == ("p0",)
    with pytest.raises(ValueError, match="below its target"):
        Rules({TOKYO: 3}, {TOKYO: 2})


def test_a_missing_idle_process_is_not_trimmed() -> None:
    records = recs(
        rec("old", created=1, missing=NOW - 1), rec("new", created=2), rec("x", created=3)
    )
    actions = reconcile(Rules({TOKYO: 1}), records, [], now=NOW)
    assert actions.stops == ("new",)


# -- intents whose outcome is unknown ------------------------------------------------


def test_an_orphan_intent_is_looked_for_and_not_capacity_by_default() -> None:
    rules = Rules({TOKYO: 1})
    young = [intent("i", sent=NOW - 5)]
    actions = reconcile(rules, {}, young, now=NOW)
    assert actions.creates == {TOKYO: 1}
    assert actions.look == {TOKYO}
    actions = reconcile(rules, {}, young, now=NOW, listings={TOKYO: []})
    assert actions.look == {TOKYO}  # within the grace: listings may lag too
    assert actions.expired == ()
    old = [intent("i", sent=NOW - rules.intent_grace)]
    actions = reconcile(rules, {}, old, now=NOW, listings={TOKYO: []})
    assert actions.expired == ("i",)
    assert actions.look == frozenset()


def test_an_orphan_intent_can_count_as_capacity_during_its_grace() -> None:
    rules = Rules({TOKYO: 1}, intent_grace=15, intent_max_age=600, count_unknown=True)
    young = [intent("i", sent=NOW - 5)]
    actions = reconcile(rules, {}, young, now=NOW)  # could not list
    assert actions.creates == {}
    assert actions.look == {TOKYO}
    assert actions.expired == ()

    old = [intent("i", sent=NOW - 20)]
    actions = reconcile(rules, {}, old, now=NOW)  # still could not list
    assert actions.creates == {TOKYO: 1}  # no longer counted...
    assert actions.look == {TOKYO}  # ...but still looked for
    assert actions.expired == ()

    ancient = [intent("i", sent=NOW - 600)]
    actions = reconcile(rules, {}, ancient, now=NOW)
    assert actions.expired == ("i",)
    assert actions.look == frozenset()


def test_a_listing_adopts_the_process_an_intent_made() -> None:
    rules = Rules({TOKYO: 2})
    listing = {
        TOKYO: [
            rec("ours", S.STARTING, created=NOW),
            rec("known", created=NOW),
            rec("dead", S.FAILED, created=NOW),
            rec("draining", S.DRAINING, created=NOW),
        ]
    }
    actions = reconcile(
        rules, recs(rec("known")), [intent("i", server=NOW - 1)], now=NOW, listings=listing
    )
    assert [(a.intent_id, a.record.process_id) for a in actions.adoptions] == [("i", "ours")]
    assert actions.counts[TOKYO] == RegionCounts(starting=1, idle=1)
    assert actions.creates == {}
    assert actions.expired == ()
    assert actions.look == frozenset()


def test_a_listing_without_the_process_keeps_a_young_intent_and_expires_an_old_one() -> None:
    rules = Rules({TOKYO: 1}, intent_grace=15, count_unknown=True)
    young, old = intent("young", sent=NOW - 1), intent("old", sent=NOW - 15)
    actions = reconcile(rules, {}, [young, old], now=NOW, listings={TOKYO: []})
    assert actions.expired == ("old",)
    assert actions.look == {TOKYO}
    assert actions.creates == {}  # the young one may still show up (read lag)


def test_an_intent_is_looked_for_until_its_creates_deadline_plus_the_grace() -> None:
    # The server may act on a create until the client gives up on it (its window).
    rules = Rules({TOKYO: 1}, intent_grace=2, count_unknown=True)
    slow = CreateIntent("slow", TOKYO, NOW - 6, 1, None, window=5.0)
    actions = reconcile(rules, {}, [slow], now=NOW, listings={TOKYO: []})
    assert actions.expired == ()
    assert actions.look == {TOKYO}
    assert actions.creates == {}  # still counted as capacity meanwhile
    actions = reconcile(rules, {}, [slow], now=NOW + 1, listings={TOKYO: []})
    assert actions.expired == ("slow",)
    assert actions.creates == {TOKYO: 1}


def test_without_grace_an_empty_listing_expires_the_intent_and_replaces_it() -> None:
    # One look, then the reaper's.
    rules = Rules({TOKYO: 1}, intent_grace=0)
    actions = reconcile(rules, {}, [intent("i")], now=NOW, listings={TOKYO: []})
    assert actions.expired == ("i",)
    assert actions.creates == {TOKYO: 1}


def test_an_intent_only_matches_processes_created_after_its_send_less_the_skew() -> None:
    rules = Rules({TOKYO: 1}, skew=30)
    i = intent("i", server=1000.0)
    too_old = {TOKYO: [rec("before", created=969.0)]}
    assert reconcile(rules, {}, [i], now=NOW, listings=too_old).adoptions == ()
    within = {TOKYO: [rec("within", created=970.0)]}
    assert [
        a.record.process_id for a in reconcile(rules, {}, [i], now=NOW, listings=within).adoptions
    ] == ["within"]


def test_processes_not_taken_in_the_window_are_foreign_and_never_adopted_later() -> None:
    rules = Rules({TOKYO: 3}, skew=1)
    listing = {
        TOKYO: [
            rec("mine", created=1000.0),
            rec("theirs", created=1001.0),
            rec("older", created=990.0),  # before the window: not reported
            rec("gone", S.STOPPED, created=1002.0),
        ]
    }
    # Two intents, two candidates: each adopts one, the oldest first.
    two = [intent("i", server=1000.0), intent("k", server=1000.0)]
    both = reconcile(rules, {}, two, now=NOW, listings=listing)
    assert sorted(a.record.process_id for a in both.adoptions) == ["mine", "theirs"]
    assert both.foreign == both.ambiguous == ()
    # One intent, two candidates: nothing tells which is its (no client tag).
    # None is adopted (the pool would stop another client's on exit); the
    # intent is given up and both are reported ambiguous, never adopted later.
    first = reconcile(rules, {}, [intent("i", server=1000.0)], now=NOW, listings=listing)
    assert first.adoptions == ()
    assert first.foreign == first.ambiguous == ("mine", "theirs")
    assert first.expired == ("i",)
    # A later intent, and "theirs" is still listed: it is not adopted.
    later = [intent("j", server=995.0)]
    again = reconcile(rules, {}, later, now=NOW, listings=listing, not_ours={"theirs", "mine"})
    assert again.adoptions == ()
    assert again.foreign == ()


def test_listings_match_only_their_own_region() -> None:
    listing = {TOKYO: [rec("other", region=LONDON, created=NOW)]}
    actions = reconcile(Rules({TOKYO: 1}), {}, [intent("i")], now=NOW, listings=listing)
    assert actions.adoptions == ()


def test_match_prefers_the_first_process_made_after_the_send() -> None:
    candidates = [
        rec("skewed", created=995.0),
        rec("late", created=1010.0),
        rec("soon", created=1001.0),
    ]
    pairs = match_strays([intent("i", server=1000.0)], candidates, skew=30)
    assert [p.process_id for _, p in pairs] == ["soon"]
    # Without a process after the send: the oldest within the allowance.
    candidates = [rec("b", created=995.0), rec("a", created=980.0), rec("old", created=969.0)]
    pairs = match_strays([intent("i", server=1000.0)], candidates, skew=30)
    assert [p.process_id for _, p in pairs] == ["a"]


def test_match_serves_the_highest_bound_first() -> None:
    # Served first, "low" would take "p12" (made after its send: preferred)
    # and leave "high" (bound 5) nothing, since p3 is too old for it.
    low, high = intent("low", server=10.0), intent("high", server=15.0)
    pairs = match_strays([low, high], [rec("p3", created=3.0), rec("p12", created=12.0)], skew=10)
    assert sorted((i.intent_id, p.process_id) for i, p in pairs) == [
        ("high", "p12"),
        ("low", "p3"),
    ]


@st.composite
def _matching_case(draw: st.DrawFn) -> tuple[list[CreateIntent], list[ProcessRecord]]:
    sends = draw(st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=4))
    created = draw(st.lists(st.integers(0, 12), max_size=4))
    intents = [intent(f"i{n}", server=None if s is None else float(s)) for n, s in enumerate(sends)]
    candidates = [rec(f"p{n}", created=float(c)) for n, c in enumerate(created)]
    return intents, candidates


def _largest_matching(
    intents: list[CreateIntent], candidates: list[ProcessRecord], skew: float
) -> int:
    best = 0
    for k in range(min(len(intents), len(candidates)), 0, -1):
        for chosen in itertools.permutations(candidates, k):
            for subset in itertools.combinations(intents, k):
                if all(
                    i.server_sent is None or c.created_at >= i.server_sent - skew
                    for i, c in zip(subset, chosen, strict=True)
                ):
                    return k
    return best


@settings(max_examples=500, deadline=None)
@given(_matching_case(), st.sampled_from([0.0, 2.0, 5.0]))
def test_match_is_a_largest_valid_matching(
    case: tuple[list[CreateIntent], list[ProcessRecord]], skew: float
) -> None:
    intents, candidates = case
    pairs = match_strays(intents, candidates, skew=skew)
    assert len({i.intent_id for i, _ in pairs}) == len(pairs)
    assert len({p.process_id for _, p in pairs}) == len(pairs)
    for i, p in pairs:
        assert i.server_sent is None or p.created_at >= i.server_sent - skew
    assert len(pairs) == _largest_matching(intents, candidates, skew)


# -- properties of a whole pass ---------------------------------------------------------

_statuses = st.sampled_from([*ProcessStatus, ProcessStatus("hibernating")])
_regions = st.sampled_from([TOKYO, LONDON, DALLAS])


@st.composite
def _record(draw: st.DrawFn, pid: str) -> ProcessRecord:
    return ProcessRecord(
        pid,
        draw(_regions),
        draw(_statuses),
        draw(st.integers(0, 2)),
        float(draw(st.integers(0, 50))),
        NOW,
        draw(st.one_of(st.none(), st.sampled_from([NOW - 100, NOW - 1]))),
    )


@st.composite
def _pass(
    draw: st.DrawFn,
) -> tuple[
    Rules, dict[str, ProcessRecord], list[CreateIntent], set[str], dict[Region, list[ProcessRecord]]
]:
    targets = draw(st.dictionaries(_regions, st.integers(0, 4), max_size=3))
    extra = (
        draw(st.dictionaries(st.sampled_from(sorted(targets, key=str)), st.integers(0, 2)))
        if targets
        else {}
    )
    rules = Rules(
        targets,
        {r: targets[r] + n for r, n in extra.items()},
        intent_grace=draw(st.sampled_from([0.0, 15.0])),
        count_unknown=draw(st.booleans()),
        give_up_missing=60.0,
    )
    records = {f"p{n}": draw(_record(f"p{n}")) for n in range(draw(st.integers(0, 8)))}
    intents = [
        CreateIntent(
            f"i{n}", draw(_regions), NOW - draw(st.sampled_from([0, 10, 20, 700])), 1, None
        )
        for n in range(draw(st.integers(0, 4)))
    ]
    in_flight = {i.intent_id for i in intents if draw(st.booleans())}
    listed = draw(st.lists(_regions, unique=True))
    listings = {
        region: [draw(_record(f"l{region.value}{n}")) for n in range(draw(st.integers(0, 3)))]
        for region in listed
    }
    # A listing shows the region's processes, the pool's own included.
    for record in records.values():
        if record.region in listings and draw(st.booleans()):
            listings[record.region].append(record)
    return rules, records, intents, in_flight, listings


@settings(max_examples=400, deadline=None)
@given(_pass())
def test_a_pass_keeps_the_rules(
    case: tuple[
        Rules,
        dict[str, ProcessRecord],
        list[CreateIntent],
        set[str],
        dict[Region, list[ProcessRecord]],
    ],
) -> None:
    rules, records, intents, in_flight, listings = case
    a = reconcile(rules, records, intents, now=NOW, in_flight=in_flight, listings=listings)
    dropped = {d.process_id for d in a.drops}
    adopted = {x.record.process_id for x in a.adoptions}
    after = {pid: r for pid, r in records.items() if pid not in dropped}
    after.update({x.record.process_id: x.record for x in a.adoptions})

    # Dropped only once seen ended, or missing past the give-up time.
    for d in a.drops:
        r = records[d.process_id]
        assert r.state == "ended" or (
            r.missing_since is not None and NOW - r.missing_since >= rules.give_up_missing
        )
    # Adoptions: new ids, live, from the intent's own region, not in flight, one per intent.
    assert not adopted & set(records)
    assert len(adopted) == len(a.adoptions) == len({x.intent_id for x in a.adoptions})
    by_id = {i.intent_id: i for i in intents}
    for x in a.adoptions:
        assert x.intent_id not in in_flight
        assert x.record.region == by_id[x.intent_id].region
        assert x.record.state in ("starting", "idle", "busy")
        assert x.record in listings[x.record.region]
    # Foreign: listed, live, neither the pool's nor adopted.
    listed = {r.process_id for rs in listings.values() for r in rs}
    assert set(a.foreign) <= listed - set(records) - adopted
    # Expired intents are orphans, and never also adopted.
    assert not set(a.expired) & in_flight
    assert not set(a.expired) & {x.intent_id for x in a.adoptions}
    # Stops: idle, found at the last read, oldest first, only what exceeds the limit.
    for pid in a.stops:
        assert after[pid].state == "idle" and after[pid].missing_since is None
    for region, counts in a.counts.items():
        stopped = [p for p in a.stops if after[p].region == region]
        assert len(stopped) <= max(0, counts.idle - rules.limit(region))
        kept_idle = [
            r
            for r in after.values()
            if r.region == region
            and r.state == "idle"
            and r.missing_since is None
            and r.process_id not in stopped
        ]
        if stopped and kept_idle:
            assert max((after[p].created_at, p) for p in stopped) < min(
                (r.created_at, r.process_id) for r in kept_idle
            )
        # Never create and stop in one region; never create past the target.
        assert not (stopped and a.creates.get(region))
        assert a.creates.get(region, 0) <= max(
            0, rules.targets.get(region, 0) - counts.idle - counts.starting
        )
    # Counts describe the records after the pass; failed grows by the drops.
    for region, counts in a.counts.items():
        states = [r.state for r in after.values() if r.region == region]
        assert (counts.starting, counts.idle, counts.busy) == (
            states.count("starting"),
            states.count("idle"),
            states.count("busy"),
        )
        assert counts.failed == sum(1 for d in a.drops if d.region == region)
    # Regions below target with no intent counted as capacity get the difference.
    for region, target in rules.targets.items():
        if not any(i.region == region for i in intents):
            c = a.counts[region]
            assert a.creates.get(region, 0) == max(0, target - c.idle - c.starting)


# -- exit and records ------------------------------------------------------------------


def test_exit_stops_starting_and_idle_or_everything_live() -> None:
    records = [
        rec("idle"),
        rec("boot", S.STARTING),
        rec("busy", rooms=1),
        rec("drain", S.DRAINING),
        rec("gone", S.STOPPED),
    ]
    assert exit_stops(records, stop_busy=False) == ["idle", "boot"]
    assert exit_stops(records, stop_busy=True) == ["idle", "boot", "busy", "drain"]


def test_record_of_a_process() -> None:
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    process = ProcessV2(
        "p1", "app", 1, LONDON, S.RUNNING, 2, 4, created, None, None, None, None, ()
    )
    r = record_of(process, now=NOW)
    assert r == ProcessRecord("p1", LONDON, S.RUNNING, 2, created.timestamp(), NOW, None)
    assert r.state == "busy"
