"""A seeded generator of hostile JSON: random shapes, real field names with wrong values, huge numbers, deep
nesting, odd strings. Used by tests/test_garbage.py against the worker and the job-file loader."""

from __future__ import annotations

import dataclasses
import json
import random

from t2vz_backend.errors import T2VZError
from t2vz_backend.protocol import REQUEST_TYPES, ControlSpec, LoraSpec, MotionKey, command_from_dict, parse_json
from t2vz_backend.validation import check_request

FIELDS = sorted({f.name for cls in REQUEST_TYPES.values() for f in dataclasses.fields(cls)})
NESTED_FIELDS = sorted({f.name for cls in (ControlSpec, LoraSpec, MotionKey) for f in dataclasses.fields(cls)})
STRINGS = ["", " ", "\x00", "\ud800", "\udfff", "../../etc", "/", "~", "tiny", "a" * 5000, "é漢字🙂", "nan", "inf",
           "-inf", "1e999", "text2video", "run", "\n", "C:\\x", "\\\\server\\share", "cuda:99", "cuda:x", "::"]
NUMBERS = [0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**400, -(10**400),
           1e308, -1e308, 5e-324, 1.5, -0.0, 0.1, 10**4300 - 1]


def value(rng: random.Random, depth: int = 0):
    """Any JSON value, biased to what breaks parsers and validators."""
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice([None, True, False, *NUMBERS, *STRINGS, rng.random() * 10 ** rng.randint(-5, 300)])
    if roll < 0.6:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = FIELDS + NESTED_FIELDS + ["type", "op", "id", "job", "", "\x00", "__proto__"]
    return {rng.choice(keys): value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def job(rng: random.Random) -> dict:
    """A job of a real type with a few real fields set to random values."""
    data = {"type": rng.choice([*REQUEST_TYPES, "magic", 7, None, ["text2video"], {"x": 1}])}
    for name in rng.sample(FIELDS, rng.randint(1, 6)):
        data[name] = value(rng)
    if rng.random() < 0.3:
        data["controls"] = [{"kind": value(rng), "path": value(rng), rng.choice(NESTED_FIELDS): value(rng)}]
    return data


def deep(levels: int, kind: str = "list") -> str:
    return ("[" * levels + "]" * levels) if kind == "list" else ('{"a":' * levels + "1" + "}" * levels)


def fixed_lines() -> list[str]:
    """Hand-made cases of every class the hostile run found."""
    run = '{"op":"run","id":"j","job":{"type":"text2video",%s}}'
    return [
        '{"op": ["run"]}', '{"op": {"run": 1}}', '{"op": "run", "job": []}', '{"op": "cancel", "id": ["x"]}',
        '{"op": "ping", "version": {"a": 1}}', run % '"prompt": ["a", "b"]', run % '"model": {"path": "x"}',
        run % '"loras": [{"path": ["x"]}]', run % '"controls": "pose"', run % ('"frames": 1' + "0" * 5000),
        run % ('"frames": 1' + "0" * 400), run % ('"guidance": 1' + "0" * 400), run % '"seed": 1e999',
        run % '"width": -1e999', run % '"fps": 1e-320', run % ('"prompt": ' + deep(50000)),
        run % ('"prompt": ' + deep(40, "object")), deep(100000), deep(100000, "object"), "[" * 100000,
        '{"op":"run","job":' + deep(30, "object") + "}", "\x00\x01\x02", "{" + '"a":1,' * 100000 + '"b":2}',
        '"just a string"', "12345", "null", "true", "[]", "{}", '{"op": null}', '{"op": 1e999}',
        '{"op":"run","id":"' + "x" * 100000 + '","job":{}}', run % '"output_dir": "\\u0000"',
        run % '"output_dir": "\\ud800", "prompt": "x"', run % '"mask_dir": "\\ud800", "smooth_bg": true',
    ]


def lines(seed: int, count: int) -> list[str]:
    """``count`` generated command lines, plus the fixed ones; none is a valid shutdown or a runnable job."""
    rng = random.Random(seed)
    out = fixed_lines()
    while len(out) < count:
        shape = rng.random()
        if shape < 0.3:
            data = value(rng)
        elif shape < 0.5:
            data = {"op": rng.choice(["run", "cancel", "ping", "unload", "stop", 1, None, [], {}]),
                    **{rng.choice(["id", "job", "version", "x"]): value(rng) for _ in range(rng.randint(0, 3))}}
        else:
            data = {"op": "run", "id": rng.choice(["", "a", "../x", 5]), "job": job(rng)}
        out.append(json.dumps(data, allow_nan=False) if shape < 0.95 else json.dumps(data)[: rng.randint(0, 40)])
    return [harmless(line) for line in out]


def job_files(seed: int, count: int) -> list[bytes]:
    """Contents of ``count`` damaged job files (none of them a job that would run)."""
    rng = random.Random(seed)
    out = [b"", b"\xff\xfe\x00garbage", bytes(range(256)), deep(100000).encode(), b'{"request": ' + deep(60).encode()
           + b"}", ('{"type": "text2video", "frames": 1' + "0" * 5000 + "}").encode(), b'{"type": "text2video",',
           b'{"request": {"type": "pix2pix", "input": ["x"]}}', b'{"request": 5}', b'{"type": {"a": 1}}']
    while len(out) < count:
        shape = rng.random()
        data = value(rng) if shape < 0.2 else {"request": job(rng)} if shape < 0.35 else job(rng)
        if shape > 0.35 and isinstance(data, dict):
            data = never_runs(data)
        text = json.dumps(data)
        out.append(text.encode() if rng.random() < 0.9 else rng.randbytes(rng.randint(1, 300)))
    return out


def never_runs(job_data: dict) -> dict:
    """``job_data``, made invalid if it happens to be a job that validates."""
    from t2vz_backend.protocol import request_from_dict

    try:
        check_request(request_from_dict(job_data))
    except Exception:  # noqa: BLE001 - anything else is the loader's to survive
        return job_data
    return {**job_data, "steps": 1}


def harmless(line: str) -> str:
    """``line``, unless it is a shutdown, a ping or a job that would really run: then one that is refused."""
    try:
        command = command_from_dict(parse_json(line))
    except T2VZError:
        return line
    except Exception:  # noqa: BLE001 - the worker must survive this too, so keep it
        return line
    if type(command).__name__ in ("Shutdown", "Ping"):  # a ping's pong would end the test's exchange early
        return json.dumps({"op": command.OP, "bogus": 1})
    job_request = getattr(command, "job", None)
    if job_request is not None:
        try:
            check_request(job_request)
        except T2VZError:
            return line
        return line.replace('"op"', '"op_"', 1)  # a valid job: make it an unknown field instead
    return line
