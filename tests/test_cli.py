import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from perfkit.cli import main
from perfkit.core.errors import PerfkitError

QUICK = ["--quick", "--no-isolate", "--min-time", "0", "--max-time", "0.1"]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


def test_help_imports_nothing_heavy():
    code = ("import sys; from perfkit.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('onnxruntime', 'numpy', 'pandas', 'onnx') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("[]")


def test_bench_prints_a_table_and_stores_the_run(cli, relu_model, tmp_path):
    result = cli("bench", relu_model, "--batch", "1,4", *QUICK)
    assert result.exit_code == 0, result.output
    assert "median ± CI" in result.stdout and "saved run" in result.stderr
    run_files = list((tmp_path / "results" / "runs").glob("*.json"))
    assert len(run_files) == 1
    shown = cli("show", "latest", "--format", "csv")
    assert shown.exit_code == 0 and shown.stdout.count("\n") == 3
    listed = cli("runs")
    assert run_files[0].stem in listed.stdout and "complete" in listed.stdout


@pytest.mark.parametrize("args,message", [
    (["bench", "missing.onnx"], "perfkit: error: missing.onnx: no such file or folder — check the path"),
    (["bench", "{model}", "--dim", "nope=3"], "perfkit: error: --dim nope: no input has a dim of that name"),
    (["bench", "{model}", "--target", "ort:nopu"], "perfkit: error: --target ort:nopu: nopu is not in this"),
    (["show", "nothing-here"], "perfkit: error: nothing-here: no run with that id"),
])
def test_user_errors_are_one_line_exit_2_and_write_nothing(cli, relu_model, tmp_path, args, message):
    result = cli(*[a.replace("{model}", relu_model) for a in args], *(QUICK if args[0] == "bench" else []))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_the_threshold_and_the_sequential_design_are_options(cli, relu_model, tmp_path):
    result = cli("bench", relu_model, "--threshold", "5%", "--no-interleave", *QUICK)
    assert result.exit_code == 0, result.output
    (run_file,) = (tmp_path / "results" / "runs").glob("*.json")
    run = json.loads(run_file.read_text())
    assert run["spec"]["plan"]["threshold"] == 0.05 and run["spec"]["plan"]["interleave"] is False
    assert run["results"][0]["measurement"]["blocks"] == []
    bad = cli("bench", relu_model, "--threshold", "lots", *QUICK)
    assert bad.exit_code == 2 and bad.stderr.startswith("perfkit: error: --threshold lots: not a percentage")


def test_compare_of_two_model_files_with_a_bad_path_is_one_line(cli, relu_model, tmp_path):
    result = cli("compare", relu_model, tmp_path / "absent.onnx")
    assert result.exit_code == 2 and result.stderr.startswith(f"perfkit: error: {tmp_path / 'absent.onnx'}: no such")


def test_debug_shows_the_traceback(cli):
    result = cli("bench", "missing.onnx", "--debug")
    assert result.exit_code == 1 and isinstance(result.exception, PerfkitError)  # raised, not turned into exit 2
    assert str(result.exception) == "missing.onnx: no such file or folder — check the path"


def test_failed_rows_exit_3_and_output_file_is_written(cli, nan_model, tmp_path):
    out = tmp_path / "out.json"
    result = cli("bench", nan_model, "--format", "json", "-o", out, "--no-save", *QUICK)
    assert result.exit_code == 3
    assert json.loads(out.read_text())["results"][0]["status"] == "invalid"
    assert not (tmp_path / "results").exists()


def test_env_prints_the_fingerprint(cli):
    result = cli("env", "--format", "json")
    assert json.loads(result.stdout)["providers"]


def test_real_process_end_to_end(relu_model, tmp_path):
    """The installed console script, isolation on, as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "perfkit", "bench", relu_model, "--quick", "--min-time", "0",
                           "--max-time", "0.2", "--format", "markdown", "--results-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| base | ort:cpu | CPU | 1 |" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "perfkit", "bench", str(tmp_path / "nope.onnx")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_bench_with_variants_marks_the_pick_and_explains_slow_rows(cli, tmp_path):
    import onnx

    from tests import models

    onnx.save_model(models.conv(), tmp_path / "conv.onnx")
    result = cli("bench", tmp_path / "conv.onnx", "--variants", "ort-opt:basic,int8-dynamic", "--accuracy-budget",
                 "cos>=0.9", "--cache-dir", tmp_path / "c", "--no-save", "--quick", "--no-isolate", "--min-time",
                 "0.5", "--max-time", "3")  # time enough to call a 2x slowdown on a busy machine
    assert result.exit_code == 0, result.output
    for column in ("speed-up", "size", "Δ nodes", "cos", "max abs", "agree"):
        assert column in result.stdout
    assert "★ fastest inside cos>=0.9 on ort:cpu, batch 1: row" in result.stdout
    assert "dynamic quantization of a conv net" in result.stdout  # ConvInteger is slower than fp32 Conv here


def test_optimize_writes_variants_and_a_manifest(cli, tmp_path, plugins):
    import onnx

    from tests import models

    plugins("crash=tests.workers:abort")
    onnx.save_model(models.mlp(), tmp_path / "mlp.onnx")
    result = cli("optimize", tmp_path / "mlp.onnx", "-o", tmp_path / "out", "--variants",
                 "ort-opt:all,int8-dynamic:per-channel,crash", "--cache-dir", tmp_path / "c")
    assert result.exit_code == 3, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    ok = [v for v in manifest["variants"] if v["status"] == "ok"]
    assert [v["variant"] for v in ok] == ["ort-opt:all", "int8-dynamic:per-channel"]
    for v in ok:
        onnx.checker.check_model(v["file"])
        assert v["digest"] and v["size_bytes"] > 0 and v["lineage"] == [v["variant"]]
    assert manifest["variants"][2]["reason"] == "building crash: crashed (SIGABRT)"
    assert (tmp_path / "out" / "int8-dynamic_per-channel.onnx").is_file()


@pytest.mark.parametrize("args,message", [
    (["--variants", "int9"], "perfkit: error: --variants int9: unknown transform 'int9'"),
    (["--variants", "int8-static", "--calibration", "nope.npz"], "perfkit: error: nope.npz: no such file"),
    (["--accuracy-budget", "cos>>1"], "perfkit: error: --accuracy-budget cos>>1: cannot read 'cos>>1'"),
])
def test_variant_option_errors_are_one_line(cli, relu_model, tmp_path, args, message):
    result = cli("bench", relu_model, *args, *QUICK)
    assert result.exit_code == 2 and result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1 and not (tmp_path / "results").exists()


def test_optimize_user_errors_write_nothing(cli, relu_model, tmp_path):
    (tmp_path / "taken").write_text("x")
    for args, message in ((["missing.onnx", "-o", "out"], "perfkit: error: missing.onnx: no such file"),
                          ([relu_model, "-o", "taken"],
                           "perfkit: error: Invalid value for '-o' / '--output-dir': Directory 'taken' is a file")):
        result = cli("optimize", *args, "--variants", "ort-opt:basic")
        assert result.exit_code == 2 and result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_option_errors_click_finds_are_one_line_too(cli, relu_model):
    result = cli("bench", relu_model, "--opt-level", "bogus")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("perfkit: error: Invalid value for '--opt-level': 'bogus' is not one of")
    assert result.stderr.rstrip().endswith("— see main bench --help")


def test_eval_labels_that_do_not_fit_are_one_line_exit_2(cli, save, tmp_path):
    import numpy as np

    from tests import models

    path = save(models.classifier(classes=6), "clf.onnx")
    np.savez(tmp_path / "eval.npz", x=np.zeros((4, 8), np.float32), labels=np.array([0.5, 1.5, 2.5, 3.5]))
    result = cli("bench", path, "--eval", tmp_path / "eval.npz", *QUICK)
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"perfkit: error: {tmp_path / 'eval.npz'}: no output of the model can be judged "
                                    "against its 4 labels")
    assert not (tmp_path / "results").exists()


def test_a_task_budget_without_eval_data_is_one_line_exit_2(cli, relu_model):
    result = cli("bench", relu_model, "--accuracy-budget", "top1_drop<=0.5%", *QUICK)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("perfkit: error: --accuracy-budget top1_drop: a task term needs labelled "
                                     "samples — give --eval data.npz with labels (or drop the term)")


@pytest.mark.parametrize("args,message", [
    (["tune", "{model}", "-o", "tuned", "--time-budget", "5s"],
     "perfkit: error: --time-budget 5s: too short to time 2 model files and their sessions even once"),
    (["tune", "{model}", "-o", "tuned", "--time-budget", "soon"], "perfkit: error: --time-budget soon: not a duration"),
    (["tune", "{model}", "-o", "tuned", "--batch", "1,8"],
     "perfkit: error: --batch: several batch sizes only make sense when tuning for throughput"),
    (["bench", "{model}", "--config", "nowhere.json"], "perfkit: error: nowhere.json: no such file"),
])
def test_tune_and_config_mistakes_are_one_line_exit_2_and_write_nothing(cli, relu_model, tmp_path, args, message):
    result = cli(*[a.replace("{model}", relu_model) for a in args], "--variants", "ort-opt:all",
                 *(QUICK if args[0] == "bench" else []))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message)
    assert not (tmp_path / "tuned").exists() and not (tmp_path / "results").exists()


def test_a_config_that_is_not_perfkits_is_one_line_exit_2(cli, relu_model, tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"format": "olive", "version": 1}))
    result = cli("bench", relu_model, "--config", tmp_path / "other.json", *QUICK)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"perfkit: error: {tmp_path / 'other.json'}: not a perfkit-tuned config (no "
                                     "\"format\": \"perfkit-tuned\") — give the perfkit-tuned.json that `perfkit tune "
                                     "-o DIR` wrote")


def test_upgrade_opset_reaches_bench_and_tune(cli, tmp_path):
    import onnx

    from tests.models import old_batchnorm

    onnx.save_model(old_batchnorm(), tmp_path / "old.onnx")
    result = cli("bench", tmp_path / "old.onnx", "--upgrade-opset", "--no-save", *QUICK)
    assert result.exit_code == 0, result.output
    assert "warning: " + str(tmp_path / "old.onnx") + ": opset 6 → 13 by onnx.version_converter" in result.output
    result = cli("tune", tmp_path / "old.onnx", "-o", tmp_path / "tuned", "--time-budget", "1s", "--upgrade-opset",
                 "--no-isolate", "--cache-dir", tmp_path / "tc")
    assert result.exit_code == 2 and "--time-budget 1s: too short" in result.stderr
    assert [p.name for p in (tmp_path / "tc" / "upgraded").iterdir()]  # before that, the model was upgraded


@pytest.mark.parametrize("command", ["bench", "convert"])
def test_a_core_ml_model_is_one_line_saying_perfkit_does_not_load_it(cli, tmp_path, command):
    (tmp_path / "m.mlmodel").write_bytes(b"\x08\x05\x12\x05\x0a\x03\x0a\x01x")  # a Core ML spec, by hand
    result = cli(command, tmp_path / "m.mlmodel", *(["-o", tmp_path / "m.onnx"] if command == "convert" else []))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"perfkit: error: {tmp_path / 'm.mlmodel'}: is a Core ML model")
    assert "perfkit does not load Core ML: it predicts only on Apple platforms" in result.stderr
    assert "(torch.onnx.export, tf2onnx, skl2onnx)" in result.stderr and not (tmp_path / "m.onnx").exists()
