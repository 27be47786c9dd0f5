"""Calibration on a labelled folder: each matching rule's identification threshold, its
per-person false match rate, and the views offsets (``manyangles calibrate``).

Impostor searches: the gallery is each half of the identities in turn (even positions, then
odd), the searches of the other half the impostors, pooled over both halves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput
from core.evaluation.eval_data import EvalData, gallery_index, top_searches
from core.evaluation.metrics import threshold_for_fpir
from core.search.fpir import MIN_PAIR_HITS, person_fmr_for
from core.search.rules import RULES, VIEWS_OFFSET_TAIL, person_scores


@dataclass(frozen=True)
class RuleCalibration:
    """One rule's identification threshold and what it rests on."""

    threshold: float
    searches: int  # impostor searches pooled over both halves
    person_fmr: float  # share of (impostor search, enrolled person) pairs at or over the threshold
    pairs: int  # those pairs (searches with a face x persons of their gallery)
    gallery_size: int  # the persons the target FPIR holds for


def _halves(n_id: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(0, n_id, 2), np.arange(1, n_id, 2)


def calibrate_rules(
    data: EvalData,
    views: tuple[str, ...] | None,
    target: float,
    rules: tuple[str, ...] = RULES,
    offsets: dict[str, float] | None = None,
    gallery_size: int | None = None,
) -> dict[str, RuleCalibration]:
    """Per rule: the threshold at ``target`` FPIR, and the per-person false match rate at it.

    The gallery is mixed as a real one is: every other person has ``views``, the rest only
    their original; persons with views are scored ``offsets[rule]`` lower, as the service
    scores them. Without ``gallery_size`` the threshold is the one at ``target`` over the
    impostor searches (galleries of half the identities, each half in turn). With it, the
    threshold is the one whose per-person rate gives ``target`` in a gallery of that many
    persons (``FPIR(N) = 1 - (1 - fmr) ** N``, core/search/fpir.py), read off the impostor
    pairs; refused when the folder has too few pairs to measure that rate. The pairs are every
    search with a face against every enrolled identity but its own (a person's score does not
    depend on who else is enrolled).
    """
    offsets = offsets or {}
    tops: dict[str, list[np.ndarray]] = {rule: [] for rule in rules}
    halves = _halves(len(data.identities))
    for enrolled in halves:
        with_views = np.arange(len(enrolled)) % 2 == 0
        index = gallery_index(data, enrolled, views, with_views=with_views)
        impostor = ~np.isin(data.probe_identity, enrolled)
        for rule in rules:
            score, _, _ = top_searches(data, index, enrolled, rule, offsets.get(rule, 0.0))
            tops[rule].append(score[impostor])
    pairs = impostor_pairs(data, views, rules, offsets)
    size = min(len(h) for h in halves)
    out = {}
    for rule in rules:
        top, pair = np.concatenate(tops[rule]), pairs[rule]
        if gallery_size is None:
            threshold = threshold_for_fpir(top, target)
        else:
            threshold = threshold_for_fpir(pair, _measurable_rate(target, gallery_size, pair.size))
        fmr = float(np.mean(pair >= threshold)) if pair.size else 0.0
        out[rule] = RuleCalibration(threshold, int(top.size), fmr, int(pair.size), gallery_size or size)
    return out


def impostor_pairs(
    data: EvalData, views: tuple[str, ...] | None, rules: tuple[str, ...], offsets: dict[str, float]
) -> dict[str, np.ndarray]:
    """Per rule: the scores of every search with a face against every identity but its own, in
    a gallery of everyone where every other person has ``views`` (scored ``offsets[rule]`` lower).
    A person's score does not depend on who else is enrolled, so these are the (claim, person)
    pairs of any gallery."""
    everyone = np.arange(len(data.identities))
    index = gallery_index(data, everyone, views, with_views=everyone % 2 == 0)
    found = data.probe_found
    strangers = data.probe_identity[found][:, None] != everyone[None, :]
    return {
        rule: person_scores(rule, index, data.probe_vectors[found], offsets.get(rule, 0.0))[strangers].astype(
            np.float64
        )
        for rule in rules
    }


def calibrate_verify(
    data: EvalData,
    views: tuple[str, ...] | None,
    target: float,
    rules: tuple[str, ...] = RULES,
    offsets: dict[str, float] | None = None,
) -> dict[str, tuple[float, int]]:
    """Per rule: the one-to-one threshold (a photo against a claimed person) at which at most
    ``target`` of the impostor claims are accepted, and the claims it rests on
    (``impostor_pairs``); refused when the folder has too few claims to measure that rate."""
    pairs = impostor_pairs(data, views, rules, offsets or {})
    out = {}
    for rule in rules:
        claims = pairs[rule]
        if target * claims.size < MIN_PAIR_HITS:
            need = math.ceil(MIN_PAIR_HITS / target)
            raise InvalidInput(
                f"a one-to-one threshold at FMR {target:g} rests on about {need:,} impostor claims "
                f"({MIN_PAIR_HITS} over it) and this folder gives {claims.size:,}: calibrate on a folder with more "
                "identities, or set verify_fmr higher"
            )
        out[rule] = (threshold_for_fpir(claims, target), int(claims.size))
    return out


def _measurable_rate(target: float, gallery_size: int, pairs: int) -> float:
    rate = person_fmr_for(target, gallery_size)
    if rate * pairs < MIN_PAIR_HITS:
        need = math.ceil(MIN_PAIR_HITS / rate)
        raise InvalidInput(
            f"a gallery of {gallery_size:,} persons at FPIR {target:g} needs a per-person false match rate of "
            f"{rate:.1e}; measuring it takes about {need:,} impostor pairs ({MIN_PAIR_HITS} over the threshold) "
            f"and this folder gives {pairs:,}: calibrate on a folder with more identities, or for fewer persons"
        )
    return rate


def calibrate_views_offsets(
    data: EvalData, views: tuple[str, ...] | None, rules: tuple[str, ...] = RULES, tail: float = VIEWS_OFFSET_TAIL
) -> dict[str, tuple[float, int]]:
    """Per rule: the views offset (core/search/rules.py), and the impostor pairs it rests on.

    The same persons are enrolled twice, from the photo alone and with ``views``; impostor
    probes are scored against every person (pairs, not just the top one: thousands of them);
    the offset is how far the top ``tail`` of those scores rises with the views.
    """
    plain: dict[str, list[np.ndarray]] = {rule: [] for rule in rules}
    viewed: dict[str, list[np.ndarray]] = {rule: [] for rule in rules}
    for enrolled in _halves(len(data.identities)):
        impostor = ~np.isin(data.probe_identity, enrolled) & data.probe_found
        if not views or not enrolled.size or not impostor.any():
            continue
        alone, with_views = gallery_index(data, enrolled, None), gallery_index(data, enrolled, views)
        for rule in rules:
            plain[rule].append(person_scores(rule, alone, data.probe_vectors[impostor]).ravel())
            viewed[rule].append(person_scores(rule, with_views, data.probe_vectors[impostor]).ravel())
    out = {}
    for rule in rules:
        if not plain[rule]:
            out[rule] = (0.0, 0)
            continue
        a, b = np.concatenate(plain[rule]), np.concatenate(viewed[rule])
        shift = float(np.quantile(b, 1.0 - tail) - np.quantile(a, 1.0 - tail))
        out[rule] = (round(shift, 4), int(a.size))
    return out
