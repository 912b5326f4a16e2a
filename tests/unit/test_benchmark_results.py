"""The machine line of benchmarks/RESULTS.md names the CPU, so figures from two machines are compared knowingly."""

from __future__ import annotations

from pathlib import Path

from benchmarks.results import cpu_model, write_section


def test_cpu_model_names_the_widest_vector_extension(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert cpu_model(cpuinfo) == "AMD EPYC, AVX2"
    cpuinfo.write_text("model name\t: Intel(R) Xeon(R) Platinum\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Platinum, AVX-512 bf16"
    cpuinfo.write_text("flags\t\t: sse2\n")  # no model name, no vector extension worth naming
    assert cpu_model(cpuinfo) == ""
    assert cpu_model(tmp_path / "absent") == ""


def test_a_section_is_replaced_in_place(tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr("benchmarks.results.RESULTS", results)
    write_section("a", "first")
    write_section("b", "other")
    write_section("a", "second")
    text = results.read_text()
    assert "first" not in text
    assert text.index("second") < text.index("other")  # where the section was, not appended again
