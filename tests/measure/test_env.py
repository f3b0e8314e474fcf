from perfkit.measure.env import conflicting_runtimes, fingerprint
from perfkit.output.cells import describe


def test_fingerprint_records_hardware_and_software():
    env = fingerprint()
    assert env.logical_cores >= 1 and env.cpu_model and env.python
    assert "onnxruntime" in env.packages and "CPUExecutionProvider" in env.providers
    labels = [label for label, _ in describe(env)]
    assert labels[:3] == ["CPU", "cores", "CPU flags"] and "providers" in labels


def test_both_runtimes_installed_is_called_out():
    assert "both installed" in conflicting_runtimes({"onnxruntime": "1.20", "onnxruntime-gpu": "1.20"})
    assert conflicting_runtimes({"onnxruntime-gpu": "1.20"}) is None
