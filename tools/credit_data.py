"""The credit dataset's generator: raw records from a seeded numpy RandomState. Shared by
tools/credit.py (the model) and tools/drift.py (Evidently's drift fixtures); numpy only."""

import numpy as np


def dataset(n, rng):
    countries = ["FR", "DE", "ES", "IT", "PL", "NL", "PT", "LU"]
    p = [0.3, 0.25, 0.15, 0.12, 0.08, 0.06, 0.03, 0.01]
    rows = []
    for i in range(n):
        age = float(rng.randint(18, 80))
        income = float(np.round(rng.lognormal(10.2, 0.6), 2))
        debt = float(np.round(rng.lognormal(8.5, 1.0), 2)) if rng.rand() > 0.1 else None
        country = countries[rng.choice(len(countries), p=p)] if rng.rand() > 0.03 else None
        merchant = f"mcc{rng.randint(0, 40)}"
        signup = int(rng.randint(1_704_067_200, 1_767_225_600))  # 2024-01-01 .. 2026-01-01
        # Per-user behaviour, served from the online store; 6% of users are not in it.
        known = rng.rand() > 0.06
        avg_spend = float(np.round(rng.lognormal(4.0, 0.8), 2)) if known else None
        orders = int(rng.poisson(6)) if known else None
        risk = -2.0 + 3.0 * (debt or 0) / income - 0.02 * (age - 45) + (0.8 if country in ("PL", "PT") else 0)
        risk += 0.5 * np.sin(signup / 86400 / 7 * 2 * np.pi) + rng.normal(0, 0.7)
        risk += 0.25 * np.log1p(avg_spend or 0) - 0.12 * ((orders or 0) - 6)
        label = int(risk > 0)
        if rng.rand() < 0.15:
            income = None
        rows.append({
            "user_id": f"u{i}",
            "age": age,
            "income": income,
            "debt": debt,
            "country": country,
            "merchant": merchant,
            # Half as RFC 3339 text, half as epoch seconds: both are timestamps.
            "signup": (np.datetime_as_string(np.datetime64(signup, "s")) + "Z") if i % 2 else signup,
            "default": label,
            "avg_spend_30d": avg_spend,
            "orders_90d": orders,
        })
    return rows
