"""bench.json → the Markdown report, the terminal table and the PNG plots.

Pure formatting: every number shown comes from the result dict, nothing is typed in."""

from __future__ import annotations

import statistics
from pathlib import Path


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def encoder_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, row in result["encoders"].items():
        size = result["sizes"][name]
        cosine = row.get("cosine_to_reference", {}).get("mean")
        peak = row.get("short_int8_peak_fraction")
        rows.append([
            name, _fmt(row["short_per_s"]), _fmt(row.get("short_ratio_vs_reference"), 2),
            _fmt(row.get("long_per_s")), _fmt(row.get("short_tokens_per_s"), 0),
            f"{peak * 100:.1f}%" if peak is not None else "–",
            _fmt(row["latency_p50_ms"], 2), _fmt(row["latency_p95_ms"], 2),
            _fmt(row["cold_start_s"], 2), _fmt(row.get("rss_first_vector_mb"), 0),
            _fmt(row["peak_rss_mb"], 0), _fmt(size["model_mb"]),
            _fmt(size["dependencies_mb"], 0), _fmt(row.get("ndcg@10"), 4),
            _fmt(cosine, 4), _fmt(row.get("alone_vs_batch", {}).get("min_cosine"), 4)])
    return rows


ENCODER_HEADER = ["system", "sent/s", "× ref", "docs/s", "tokens/s", "int8 peak", "p50 ms",
                  "p95 ms", "cold s", "RSS 1st", "RSS MB", "model MB", "deps MB", "nDCG@10",
                  "cos ref", "alone/batch"]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in [header, *rows])


def search_rows(result: dict) -> list[list[str]]:
    rows = []
    for scale in result["search"].get("synthetic", []):
        for method, row in scale["exact"].items():
            if "skipped" in row:
                rows.append([f"{scale['n']:,}", method, "–", "–", "–", "–", row["skipped"]])
                continue
            rows.append([f"{scale['n']:,}", method, _fmt(row["ms_per_query"], 3),
                         _fmt(row["qps"], 0), _fmt(row["bytes_per_vector"]),
                         _fmt(row["build_s"], 2), _fmt(row.get("recall@10", 1.0), 3)])
        hnsw = scale["hnsw"]
        for sweep in hnsw.get("sweep", []):
            rows.append([f"{scale['n']:,}", f"usearch HNSW ef={sweep['expansion_search']}",
                         _fmt(sweep["ms_per_query"], 3), _fmt(sweep["qps"], 0),
                         _fmt(hnsw["bytes_per_vector"]), _fmt(hnsw["build_s"], 2),
                         _fmt(sweep["recall@10"], 3)])
    return rows


SEARCH_HEADER = ["N", "method", "ms/query", "QPS", "bytes/vector", "build s", "recall@10"]


def goal_rows(result: dict) -> list[list[str]]:
    """Each product goal, the measured value of edgembed's package under test, and whether
    it is met. Ratios are taken round by round against each peer, in the same run."""
    encoders = result["encoders"]
    ours = next((r for r in encoders.values() if r["kind"] == "edgembed"), None)
    if ours is None:
        return []
    ours_name = next(n for n, r in encoders.items() if r is ours)
    rows = []

    def peer(kind: str, graph: str | None = None) -> dict | None:
        return next((r for r in encoders.values() if r["kind"] == kind and r is not ours
                     and (graph is None or r["graph"] == graph)), None)

    def per_round(other: dict | None, key: str) -> float | None:
        if other is None:
            return None
        pairs = zip(ours["per_round"], other["per_round"], strict=False)
        values = [a[key] / b[key] for a, b in pairs if a.get(key) and b.get(key)]
        return statistics.median(values) if values else None

    def add(goal: str, value: float | None, target: float, higher: bool, unit: str) -> None:
        if value is None:
            rows.append([goal, f"{'≥' if higher else '≤'} {target}{unit}", "not measured", "–"])
            return
        met = value >= target if higher else value <= target
        rows.append([goal, f"{'≥' if higher else '≤'} {target}{unit}", f"{value:.3g}{unit}",
                     "yes" if met else "no"])

    fp32 = peer("edgembed", "fp32")
    add("throughput vs the fp32 graph", per_round(fp32, "short_per_s"), 2.5, True, "×")
    add("throughput vs sentence-transformers", per_round(peer("sentence-transformers"),
                                                         "short_per_s"), 6, True, "×")
    latency = None if fp32 is None else \
        ours["latency_p50_ms"] / fp32["latency_p50_ms"]
    add("single-text p50 vs the fp32 graph", latency, 0.4, False, "×")
    add("text alone vs in its batch, min cosine",
        ours.get("alone_vs_batch", {}).get("min_cosine"), 0.999, True, "")
    add("cold start", ours["cold_start_s"], 0.5, False, " s")
    add("peak RSS after the batch-32 sentences", ours["peak_rss_mb"], 120, False, " MB")
    million = next((s for s in result["search"].get("synthetic", []) if s["n"] >= 1_000_000),
                   None)
    exact = (million or {}).get("exact", {})
    ours_ms = exact.get("edgembed exact scan", {}).get("ms_per_query")
    faiss = min((row["ms_per_query"] for name, row in exact.items()
                 if name.startswith("faiss") and "ms_per_query" in row), default=None)
    add("exact Hamming over 1M codes vs FAISS (its best thread count)",
        ours_ms / faiss if ours_ms and faiss else None, 1.5, False, "×")
    return [[f"{goal} ({ours_name})" if i == 0 else goal, *rest]
            for i, (goal, *rest) in enumerate(rows)]


def openvino_notes(result: dict) -> list[str]:
    """The OpenVINO rows' cold start with an empty and a warm model cache (the first round
    compiles; later rounds read the compiled model back)."""
    rows = [(name, row) for name, row in result["encoders"].items()
            if row["kind"] == "edgembed-openvino"]
    if not rows:
        return []
    parts = [f"{name}: {_fmt(row['cold_start_empty_cache_s'], 2)} s empty, "
             f"{_fmt(row.get('cold_start_warm_cache_s'), 2)} s warm" for name, row in rows]
    return ["- openvino rows: the same encoder on OpenVINO's CPU device (float32 "
            "arithmetic for float graphs). Cold start with an empty / a warm compiled-model "
            "cache: " + "; ".join(parts) + "."]


def plots(result: dict, out: Path) -> list[str]:
    """The three PNGs; none (with a note in `skipped`) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result["skipped"].append("plots: matplotlib is not installed")
        return []
    names = list(result["encoders"])
    rows = list(result["encoders"].values())
    made = []

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.6))
    left.barh(names, [r["short_per_s"] for r in rows], color="tab:blue")
    left.set_xlabel(f"sentences/s, batch {result['settings']['batch_size']} (higher is better)")
    right.barh(names, [r["latency_p50_ms"] for r in rows], color="tab:orange",
               label="p50")
    right.barh(names, [r["latency_p95_ms"] - r["latency_p50_ms"] for r in rows],
               left=[r["latency_p50_ms"] for r in rows], color="tab:orange", alpha=0.35,
               label="p95")
    right.set_xlabel("single-query latency, ms (lower is better)")
    right.set_yticklabels([])
    right.legend(loc="lower right")
    for axis in (left, right):
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(f"{result['machine']['cpu']['model']}, "
                    f"{result['settings']['threads']} threads, median of "
                    f"{result['settings']['rounds']} fresh processes")
    figure.tight_layout()
    figure.savefig(out / "throughput_latency.png", dpi=110)
    plt.close(figure)
    made.append("throughput_latency.png")

    quality_key = "ndcg@10" if any("ndcg@10" in r for r in rows) else None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, row in result["encoders"].items():
        y = row.get(quality_key) if quality_key else \
            row.get("cosine_to_reference", {}).get("mean")
        if y is None:
            continue
        axis.scatter(row["short_per_s"], y, label=name, s=45, alpha=0.8)
    axis.set_xlabel("sentences/s (higher is better)")
    axis.set_ylabel("SciFact nDCG@10" if quality_key else "mean cosine to the reference")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "quality_speed.png", dpi=110)
    plt.close(figure)
    made.append("quality_speed.png")

    scales = result["search"].get("synthetic", [])
    if scales:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        methods = sorted({m for s in scales for m, r in s["exact"].items() if "qps" in r})
        for method in methods:
            points = [(s["n"], s["exact"][method]["qps"]) for s in scales
                      if "qps" in s["exact"].get(method, {})]
            axis.plot(*zip(*points, strict=True), marker="o",
                      label=method if "exact" in method else f"{method} (exact)")
        hnsw = [(s["n"], next((w["qps"] for w in s["hnsw"].get("sweep", [])
                               if w["expansion_search"] == 64), None)) for s in scales]
        hnsw = [(n, q) for n, q in hnsw if q]
        if hnsw:
            axis.plot(*zip(*hnsw, strict=True), marker="s", linestyle="--",
                      label="usearch HNSW ef=64")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("codes (384-bit)")
        axis.set_ylabel("queries/s, one query per call")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3, which="both")
        figure.tight_layout()
        figure.savefig(out / "search_qps.png", dpi=110)
        plt.close(figure)
        made.append("search_qps.png")
    return made


_WAYS = {False: "one at a time", True: "side by side"}


def profile_lines(result: dict) -> list[str]:
    lines = []
    peak = result["machine"]["peak"]
    for part, section in result["profile"].items():
        stages = section["stages_s"]
        total = sum(stages.values())
        top = list(section["op_share"].items())[:6]
        lines.append(
            f"- **{part} texts** ({section['texts']} texts, {section['tokens']} tokens, "
            f"{section['padded_tokens']} after padding): encode {section['encode_s']:.3f} s; "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items())
            + " of the staged time. Inside onnxruntime: "
            + ", ".join(f"{op} {share:.0%}" for op, share in top)
            + f". {section['macs_per_token'] / 1e6:.1f} M MACs per real token executed.")
    sweep = result["profile"].get("short", {}).get("sweep", [])
    if sweep:
        lines.append("- Same process, short texts, `Encoder.encode` sentences/s by threads × batch "
                     "size: " + "; ".join(f"{r['threads']}t × b{r['batch_size']}: "
                                         f"{r['sentences_per_s']:.0f}" for r in sweep) + ".")
    sessions = result["profile"].get("short", {}).get("sessions", [])
    if sessions:
        lines.append("- Same process, onnxruntime session settings, single-text p50 / batch-32 "
                     "sentences/s: " + "; ".join(f"{r['session']}: {r['p50_ms']:.2f} ms / "
                                                 f"{r['sentences_per_s']:.0f}"
                                                 for r in sessions) + ".")
    passes = result["profile"].get("short", {}).get("passes", [])
    if passes:
        lines.append("- Same process, batch 32, passes one at a time on all threads vs side by "
                     "side on one thread each (`parallel_passes`), sentences/s / long texts/s: "
                     + "; ".join(f"{r['graph']} {_WAYS[r['parallel_passes']]}: "
                                 f"{r['sentences_per_s']:.0f} / {r['long_per_s']:.1f}"
                                 for r in passes) + ".")
    lone = result["profile"].get("single", {}).get("lone_texts", [])
    if lone:
        graphs = dict.fromkeys(r["graph"] for r in lone)
        lines.append(f"- Same process, one text alone by its tokens, ms on 1 thread / on "
                     f"{lone[0]['threads']} threads: "
                     + "; ".join(f"{graph} " + ", ".join(
                         f"{r['tokens']}: {r['one_thread_ms']:.2f} / {r['all_threads_ms']:.2f}"
                         for r in lone if r["graph"] == graph) for graph in graphs) + ".")
    lines.append(f"- Peak estimate: {peak['how']}; {peak['ghz']} GHz × {peak['cores']} cores → "
                 f"{peak['int8_macs_per_s'] / 1e9:.0f} G int8 MAC/s, "
                 f"{peak['fp32_macs_per_s'] / 1e9:.0f} G fp32 MAC/s.")
    measured = peak.get("measured_int8_gemm")
    if measured:
        size = measured["shape"][0]
        lines.append(f"- Measured: onnxruntime's `MatMulInteger` (u8×s8, stored weight) on one "
                     f"{size}×{size}×{size} product, {measured['threads']} threads, best of "
                     f"{measured.get('repeats', 10)}: {measured['macs_per_s'] / 1e9:.0f} G "
                     "int8 MAC/s.")
    return lines


def markdown(result: dict, plot_files: list[str]) -> str:
    machine = result["machine"]
    cpu = machine["cpu"]
    settings = result["settings"]
    libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    parts = [
        "# edgembed benchmark",
        "",
        f"All numbers below come from one run: `{result['command']}`, started "
        f"{result['started_utc']}, {result['wall_s'] / 60:.1f} min"
        + (" (quick mode: tiny inputs, a smoke test, not a measurement)."
           if result["quick"] else "."),
        "",
        f"Machine: {cpu['model']}, {cpu['cores']} cores, flags {', '.join(cpu['flags'])}; "
        f"Python {machine['python']}; {libraries}.",
        "",
        "## Encoders",
        "",
        markdown_table(ENCODER_HEADER, encoder_rows(result)),
        "",
        f"- Every system runs in a fresh process per round, {settings['rounds']} rounds, the "
        f"order rotating each round; medians over rounds. {settings['threads']} threads each "
        "(edgembed's `threads=`, torch.set_num_threads).",
        f"- sent/s: {settings['texts']['short']}. docs/s: {settings['texts']['long']}. "
        f"p50/p95: {settings['texts']['queries']}.",
        f"- × ref: throughput ratio to {settings['reference']}, taken within each round. "
        "cos ref: mean cosine of each system's vectors to the reference's, same texts.",
        "- cold: from the parent's clock just before starting the process to the first vector "
        "(imports, model load, one encode; files in the OS cache). RSS 1st: the process's "
        "peak resident memory (VmHWM) at its first vector; RSS MB: its peak after the batch-"
        f"{settings['batch_size']} sentences and the single queries.",
        "- tokens/s: sent/s × real (unpadded) tokens per sentence. int8 peak: tokens/s × the "
        "MACs the package's graph executes per real token (onnxruntime profile, "
        "length-sorted batches) ÷ the machine's estimated int8 peak (below).",
        "- model MB: the files each system loads. deps MB: the installed files of its "
        "distributions and everything they require (shared ones count for each).",
        "- nDCG@10: SciFact test split, full corpus, exact cosine search, measured once per "
        "model graph; systems that run the same graph share it (cos ref shows they agree), "
        "and sentence-transformers is given the fp32 graph's (its vectors match at the "
        "cosine shown).",
        *openvino_notes(result),
        "",
    ]
    for graph, quality in result["quality"].items():
        parts.append(f"- SciFact, {graph} graph ({quality['package_id']}): nDCG@10 "
                     f"{quality['ndcg@10']}, recall@100 {quality['recall@100']}; "
                     f"{quality['embeddings']}.")
    if result["quality"]:
        parts.append("")
    goals = goal_rows(result)
    if goals:
        parts += ["## Goals", "", markdown_table(["goal", "target", "measured", "met"], goals),
                  ""]
    parts += ["## Where the time goes (onnxruntime profiler, package under test)", ""]
    parts += profile_lines(result) + [""]
    search = result["search"]
    if "error" in search:
        parts += ["## Search", "", f"failed: {search['error']}", ""]
    else:
        real = search["real"]
        parts += [
            "## Search (384-bit sign codes, top-10 Hamming)", "",
            markdown_table(SEARCH_HEADER, search_rows(result)), "",
            f"- Codes: {search['synthetic_how']}. Bit statistics, real: "
            f"{real['bit_statistics']}; synthetic: "
            f"{search['synthetic'][0].get('bit_statistics')}.",
            f"- {search['timing']}; {search['threads']} threads where a library has a knob "
            "(numpy: one). Recall@10 is tie-aware: a result counts if it is within the exact "
            "10th-nearest distance.",
            "- edgembed exact scan is what an exact-mode `Index` runs (simsimd's Hamming "
            "kernel over blocks of the stored codes, `edgembed.index.scan`). "
            "usearch exact runs on an index built with connectivity 2 / expansion_add 1 "
            "(exact search ignores the graph; this is the cheapest build); HNSW rows use "
            "usearch's defaults (connectivity 16, expansion_add 128). HNSW recall on the "
            "synthetic codes says little about real data: Gaussian codes lack its clusters, "
            "and recall on them is far lower. The recall to quote is the real one below.",
            f"- usearch's free function `usearch.index.search(exact=True)` on packed uint8 "
            f"codes: {search['synthetic'][0].get('usearch_free_function')}.",
            "",
            f"HNSW on real embeddings ({real['n']:,} {real['texts']} codes, "
            f"{real['n_queries']} queries, build {real['build_s']} s):", "",
            markdown_table(["expansion_search", "ms/query", "QPS", "recall@10"],
                           [[str(r["expansion_search"]), _fmt(r["ms_per_query"], 3),
                             _fmt(r["qps"], 0), _fmt(r["recall@10"], 3)]
                            for r in real["hnsw"]]), ""]
    parts += [f"![{name}]({name})" for name in plot_files] + [""]
    if result["skipped"]:
        parts += ["## Skipped", ""] + [f"- {line}" for line in result["skipped"]] + [""]
    return "\n".join(parts)
