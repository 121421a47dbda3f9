"""Referral notes for the synthetic films: what a requesting clinician writes, not what the film shows.

A note mixes demographics, history, symptoms and the question asked ("65-year-old smoker, cough
for three weeks, rule out mass"). Its wording follows the patient's latent condition, which makes
findings likely without naming them: pneumonia brings fever and "?consolidation", heart failure
orthopnoea and "?LVF", cancer weight loss and "rule out mass". Questions are often asked of normal
films, symptoms of other conditions slip in, incidental findings have no symptoms at all, and
some notes say nothing useful ("CXR please"). So the text alone predicts the findings moderately,
and text and image together better than either.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

SIDE = {-1: "right", 1: "left"}  # the patient's side
SYMPTOMS = {
    "healthy": ["chest pain", "cough", "palpitations", "atypical chest pain", "mild wheeze", "tired all the time"],
    "pneumonia": ["fever", "productive cough", "cough and fever for {days} days", "green sputum", "rigors",
                  "crackles at the {side} base", "raised CRP", "sats {sats}% on air", "pleuritic chest pain",
                  "bronchial breathing {side} base"],
    "heart failure": ["breathless on exertion", "orthopnoea", "ankle swelling", "bibasal crackles",
                      "weight up {kg} kg", "raised BNP", "PND", "worsening shortness of breath"],
    "cancer": ["weight loss", "haemoptysis", "cough for {weeks} weeks", "hoarse voice", "night sweats",
               "finger clubbing", "persistent cough", "loss of appetite"],
    "other": ["chest pain", "shortness of breath", "cough", "fatigue", "wheeze", "fall, chest wall pain"],
}
HISTORY = {
    "healthy": ["no significant history", "asthma", "hypothyroid", "NKDA"],
    "pneumonia": ["COPD", "asthma", "recent flu", "care home resident", "diabetes"],
    "heart failure": ["known heart failure", "IHD", "previous MI", "AF", "hypertension", "on furosemide", "diabetes"],
    "cancer": ["ex-smoker", "{packs} pack-years", "COPD", "asbestos exposure", "family history of lung cancer"],
    "other": ["hypertension", "diabetes", "asthma", "GORD", "previous PE"],
}
QUESTIONS = {
    "healthy": ["please assess", "baseline", "routine", "for review in clinic"],
    "pneumonia": ["?pneumonia", "?consolidation", "?LRTI", "rule out chest infection"],
    "heart failure": ["?LVF", "?fluid overload", "?pulmonary oedema", "?CCF", "heart size?"],
    "cancer": ["rule out mass", "?malignancy", "?lung cancer", "2WW referral", "?lesion"],
    "other": ["?cause", "please assess", "?PE - CXR first", "?rib fracture"],
}
EFFUSION_CLUES = ["dull to percussion {side} base", "reduced air entry {side} base", "?{side} effusion",
                  "stony dull {side} base"]
NOTHING_USEFUL = ["CXR please.", "As discussed.", "Chest X-ray.", "See referral letter.", "Ward patient, please do today.",
                  "Pre-op assessment.", "Requested by GP.", "Please report.", "Portable film."]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(rng: np.random.Generator, template: str, side: int) -> str:
    return template.format(side=SIDE[side], days=int(rng.integers(2, 10)), weeks=int(rng.integers(3, 12)),
                           sats=int(rng.integers(86, 95)), kg=int(rng.integers(2, 7)), packs=int(rng.integers(15, 60)))


def _demographics(rng: np.random.Generator, patient: Any) -> str:
    man = patient.sex == "M"
    smoker = ", smoker" if patient.smoker and rng.random() < 0.7 else ""
    forms = [f"{patient.age}-year-old {'man' if man else 'woman'}", f"{patient.age}{patient.sex}",
             f"{patient.age} yo {'male' if man else 'female'}"]
    return _pick(rng, forms) + smoker


def _clinical(rng: np.random.Generator, patient: Any) -> list[str]:
    """History, symptoms and question: mostly from the patient's condition, sometimes from another."""
    condition = patient.condition
    side = patient.effusion_sides[0] if patient.effusion_sides else int(rng.choice([-1, 1]))
    parts = []
    for pool, rate in ((HISTORY, 0.6), (SYMPTOMS, 0.85), (SYMPTOMS, 0.4)):
        if rng.random() < rate:
            source = condition if rng.random() < 0.6 else _pick(rng, list(pool))
            parts.append(_fill(rng, _pick(rng, pool[source]), side))
    if patient.effusion_sides and rng.random() < 0.45 or not patient.effusion_sides and rng.random() < 0.04:
        parts.append(_fill(rng, _pick(rng, EFFUSION_CLUES), side if rng.random() < 0.8 else -side))
    # Normal films get asked questions too: a symptomatic patient is x-rayed to rule things out.
    asked = condition if rng.random() < (0.35 if condition == "healthy" else 0.55) else _pick(rng, list(QUESTIONS))
    parts.append(_fill(rng, _pick(rng, QUESTIONS[asked]), side))
    return list(dict.fromkeys(parts))


def referral_note(rng: np.random.Generator, patient: Any) -> str:
    """One note for ``patient`` (a :class:`crossfuse_medical.synth.Patient`), drawn from ``rng``."""
    if rng.random() < 0.12:
        return _pick(rng, NOTHING_USEFUL)
    parts = ([_demographics(rng, patient)] if rng.random() < 0.8 else []) + _clinical(rng, patient)
    separator = ", " if rng.random() < 0.6 else ". "
    text = separator.join(parts)
    return text[0].upper() + text[1:] + ("" if text.endswith("?") else ".")
