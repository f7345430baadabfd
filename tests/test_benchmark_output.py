"""Every benchmark_model output format in shared/reference/benchmark_model.md, one sample file each."""

from pathlib import Path

import pytest

from devices import benchmark_output as bo
from mnas.errors import UserError

SAMPLES = Path(__file__).parent / "data" / "benchmark_outputs"


def test_old_plain_format_takes_last_count_line_as_runs():
    out = bo.parse_file(SAMPLES / "old_plain.txt")
    assert out.runs.count == 50 and out.runs.avg_us == 249684 and out.runs.std_us == 1442
    assert out.runs.min_us == 247067 and out.runs.max_us == 254474 and out.runs.first_us == 249042
    assert not out.runs.has_percentiles and out.median_us == 249684  # old builds: median falls back to avg
    assert out.warmup is not None and out.warmup.count == 2 and out.warmup.avg_us == 304586
    assert (out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us) == (16242, 360262, 304586, 249684)
    assert out.ops is None


def test_new_format_info_prefix_and_percentiles():
    out = bo.parse_file(SAMPLES / "new_info_percentiles.txt")
    assert out.runs.count == 55 and out.runs.avg_us == pytest.approx(18514.8)
    assert (out.runs.p5_us, out.runs.median_us, out.runs.p95_us) == (18339, 18451, 18914)
    assert out.median_ms == pytest.approx(18.451) and out.avg_ms == pytest.approx(18.5148)
    assert out.warmup.median_us == 18806 and out.init_us == 20700 and out.warmup_avg_us == pytest.approx(19165.2)


def test_scientific_notation():
    out = bo.parse_file(SAMPLES / "scientific.txt")
    assert out.runs.avg_us == pytest.approx(2.95034e6) and out.runs.median_us == pytest.approx(2.94877e6)
    assert out.inference_avg_us == pytest.approx(2.95034e6) and out.init_us == pytest.approx(1.10522e6)
    # `count=1 curr=X`: a single warm-up run, every statistic is X
    assert out.warmup.count == 1 and out.warmup.avg_us == out.warmup.median_us == pytest.approx(3.61208e6)


def test_oldest_readme_average_line():
    out = bo.parse_file(SAMPLES / "oldest_readme.txt")
    assert out.warmup_avg_us == 83235 and out.init_us == 38467 and out.inference_avg_us == pytest.approx(79760.9)
    assert out.runs.count == 50


def test_oldest_average_line_alone_is_enough():
    out = bo.parse("Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9\n")
    assert out.runs.avg_us == pytest.approx(79760.9) and out.init_us == 38467


def test_all_same_runs():
    out = bo.parse("count=5 curr=1200(all same)\n")
    assert out.runs.count == 5 and out.runs.avg_us == 1200 and out.runs.std_us == 0 and out.runs.p95_us == 1200


def test_op_profile_old_format_keeps_run_order_rows_only():
    out = bo.parse_file(SAMPLES / "op_profile_old.txt")
    assert out.runs.count == 50 and out.inference_avg_us == pytest.approx(79760.9)  # "no stats:" variant
    names = [op.name for op in out.ops]
    assert len(names) == 5 and names[0] == "MobilenetV1/MobilenetV1/Conv2d_0/Relu6"  # run order, not sorted
    first = out.ops[0]
    assert (first.node_type, first.first_ms, first.avg_ms, first.percent) == ("CONV_2D", 4.269, 4.269, 10.707)
    assert out.ops[2].avg_ms == 8.009  # [start] column skipped, not read as [first]


def test_op_profile_new_format_delegate_rows_and_init_section_skipped():
    out = bo.parse_file(SAMPLES / "op_profile_new_xnnpack.txt")
    assert out.runs.count == 66 and out.runs.median_us == 15301  # count= line wins over profiler Timings line
    assert [op.node_type for op in out.ops][:3] == [
        "Convolution (NHWC, QC8) IGEMM", "Convolution (NHWC, QC8) DWConv", "Add (ND, QS8)"]
    assert out.ops[0].name == "Delegate/Convolution (NHWC, QC8) IGEMM:0"
    assert out.ops[0].avg_ms == 0.407 and out.ops[0].first_ms == 0.398 and out.ops[0].percent == 2.658
    assert "ModifyGraphWithDelegate" not in {op.node_type for op in out.ops}
    assert len(out.ops) == 6


def test_op_profile_compact_reference_form():
    out = bo.parse_file(SAMPLES / "op_profile_new_compact.txt")
    assert [op.node_type for op in out.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN",
                                               "FULLY_CONNECTED", "SOFTMAX"]
    assert out.ops[-1].avg_ms == 0.0075 and out.ops[0].name == "model/stem_conv/Relu6"
    assert sum(op.percent for op in out.ops) == pytest.approx(100.0)


def test_profiler_timings_line_alone():
    out = bo.parse("Timings (microseconds): count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929\n"
                   "Memory (bytes): count=0\n")
    assert out.runs.count == 50 and out.runs.avg_us == 79732


@pytest.mark.parametrize("sample,needle", [("garbage.txt", "Permission denied"),
                                           ("failed_model.txt", "not a valid Flatbuffer")])
def test_failures_raise_one_clear_user_error(sample, needle):
    with pytest.raises(bo.BenchmarkOutputError, match=needle) as info:
        bo.parse_file(SAMPLES / sample)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["", "hello world\n", "\x00\x01binary junk", "count=abc avg=\n"])
def test_garbage_raises(text):
    with pytest.raises(bo.BenchmarkOutputError):
        bo.parse(text)
