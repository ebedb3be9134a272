#!/usr/bin/env python3
"""Summarises one `perf script -F comm,pid,tid,ip,sym,dso` dump of a whole-machine profile
(scripts/bench-profile): each process's share of the CPU samples, and inside the
benchmark's own process (the service's code) the share by component and the functions
with the most self time, as Markdown; writes the benchmark process's stacks folded for a
flame graph (--collapsed)."""
import argparse
import collections
import re

# Components of the service's process, by the function a sample stopped in (first match).
COMPONENTS = [
    ("SQLite engine (bundled)", re.compile(r"^sqlite3|^pager|^btree|^vdbe|^balance_|^sqlite")),
    ("database client (sqlx)", re.compile(r"sqlx_postgres|sqlx_core::|sqlx::")),
    ("SQLite binding (rusqlite, sqlx-sqlite)", re.compile(r"rusqlite|sqlx_sqlite|libsqlite3_sys")),
    ("JSON (serde_json)", re.compile(r"serde_json|serde_core|serde::")),
    ("signatures and hashes (secp256k1, P-256, keccak, HMAC, SHA-2)",
     re.compile(r"secp256k1|k256|keccak|sha3|sha2|sha256|hmac|ecdsa|elliptic|crypto_bigint|aws_lc|ring::|nistz256|bignum_|p256")),
    ("ABI and RPC types (alloy)", re.compile(r"alloy")),
    ("HTTP (hyper, axum, tower, reqwest)", re.compile(r"hyper|axum|tower|reqwest|h2::|http::|httparse|matchit")),
    ("async runtime (tokio)", re.compile(r"tokio|mio::|futures|parking_lot|crossbeam|std::sys::.*futex|__futex|pthread_cond|pthread_mutex|syscall")),
    ("memory (allocation, copies)", re.compile(r"malloc|free|realloc|calloc|memcpy|memmove|memset|memcmp|_int_|alloc::|__rust_(alloc|dealloc|realloc)|cfree|tcache|mremap|brk")),
    ("logging and metrics", re.compile(r"tracing|metrics")),
    ("the service's own code (tmai_pay)", re.compile(r"tmai_pay")),
]

KERNEL = "kernel (system calls, network, scheduling)"


def parse(path):
    """Yields (comm, pid, tid, [(sym, dso)] innermost first) per sample."""
    header = re.compile(r"^(\S.*?)\s+(-?\d+)/(-?\d+)\s*$")
    frame = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")
    sample = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if sample:
                    yield sample
                sample = None
                continue
            if not line[0].isspace():
                if sample:
                    yield sample
                m = header.match(line)
                sample = (m.group(1).strip(), int(m.group(2)), int(m.group(3)), []) if m else None
                continue
            if sample is not None:
                m = frame.match(line)
                if m:
                    sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
                    sample[3].append((sym, m.group(2)))
    if sample:
        yield sample


def short(sym):
    """A function's name without its hash, generics' depth or argument list."""
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    sym = re.sub(r"\(.*\)$", "", sym)
    return sym if len(sym) <= 110 else sym[:107] + "…"


def component(frames):
    """The component a sample (frames innermost first) was running: its innermost function
    when that one names one, else the nearest caller that does (SQLite's internal
    functions, an assembly routine of a signature library)."""
    sym, dso = frames[0] if frames else ("[unknown]", "")
    if "kernel" in dso or sym.startswith(("entry_", "__x64_sys", "do_syscall", "[k]")):
        return KERNEL
    for caller, _ in frames:
        for name, pattern in COMPONENTS:
            if pattern.search(caller):
                return name
    if "libc" in dso or "ld-linux" in dso:
        return "C library (other)"
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("script")
    ap.add_argument("--name", required=True)
    ap.add_argument("--what", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--collapsed", required=True)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--tasks", help="`perf script --show-task-events` output: names processes whose main thread was never sampled")
    a = ap.parse_args()

    samples = list(parse(a.script))
    total = len(samples)
    names = {}  # pid -> name of its main thread (or the most sampled one)
    by_thread = collections.defaultdict(collections.Counter)
    for comm, pid, tid, _ in samples:
        by_thread[pid][comm] += 1
        if pid == tid:
            names[pid] = comm
    if a.tasks:
        # A process's name is its main thread's (pid == tid), as it last exec'd.
        comm = re.compile(r"PERF_RECORD_COMM(?: exec)?: (.+):(\d+)/(\d+)\s*$")
        with open(a.tasks, errors="replace") as f:
            for line in f:
                m = comm.search(line)
                if m and m.group(2) == m.group(3):
                    names[int(m.group(2))] = m.group(1)
    for pid, comms in by_thread.items():
        names.setdefault(pid, comms.most_common(1)[0][0])
    # The benchmark's process: the one whose main thread carries the bench's name.
    bench_pids = {pid for pid, n in names.items() if n.startswith(a.bench + "-") or n == a.bench}
    if not bench_pids:
        # Its main thread was never sampled: the process with the most tokio workers.
        tokio = collections.Counter(pid for comm, pid, _, _ in samples if comm.startswith("tokio-runtime"))
        bench_pids = {tokio.most_common(1)[0][0]} if tokio else set()

    def label(pid):
        if pid == 0:
            return "idle"
        if pid in bench_pids:
            return "the service (the bench's process)"
        return names[pid]

    shares = collections.Counter(label(pid) for _, pid, _, _ in samples)
    own = [s for s in samples if s[1] in bench_pids]
    comps = collections.Counter()
    funcs = collections.Counter()
    folded = collections.Counter()
    for comm, _, _, frames in own:
        sym = frames[0][0] if frames else "[unknown]"
        comps[component(frames)] += 1
        funcs[short(sym)] += 1
        stack = [short(s) for s, _ in reversed(frames)] or ["[unknown]"]
        thread = re.sub(r"-\d+$", "", comm)
        folded[";".join([thread] + [f.replace(";", ":") for f in stack])] += 1
    with open(a.collapsed, "w") as f:
        for stack, n in folded.most_common():
            f.write(f"{stack} {n}\n")

    pct = lambda n, d: f"{100.0 * n / d:.1f} %" if d else "-"
    print(f"## {a.name}: {a.what}")
    print()
    print(f"{total:,} samples over {a.cpus} CPUs ({total / 499 / a.cpus:.1f} s of wall time at 499 Hz); flame graph: [profiles/{a.name}.svg](profiles/{a.name}.svg).")
    print()
    print("| process | share of CPU samples |")
    print("|---|---:|")
    for who, n in shares.most_common(8):
        print(f"| {who} | {pct(n, total)} |")
    print()
    print("Inside the service's process, by what the sample was running:")
    print()
    print("| component | share of the process |")
    print("|---|---:|")
    for who, n in comps.most_common(10):
        print(f"| {who} | {pct(n, len(own))} |")
    print()
    print("<details><summary>Top functions (self time) in the service's process</summary>")
    print()
    print("| function | share of the process |")
    print("|---|---:|")
    for fn, n in funcs.most_common(15):
        print(f"| `{fn.replace('|', '/')}` | {pct(n, len(own))} |")
    print()
    print("</details>")


if __name__ == "__main__":
    main()
