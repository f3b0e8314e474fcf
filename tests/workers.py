"""Functions a spawned worker runs in test_isolate (they must be importable by name)."""

import os
import time

from perfkit.errors import PerfkitError


def double(x):
    return 2 * x


def abort(*_):
    os.abort()


def hang(*_):
    time.sleep(60)


def raise_value_error(_):
    raise ValueError("bad\nthing")


def raise_user_error(_):
    raise PerfkitError("m.onnx", "broken", "fix it")


def copy_model(src, dst, options, ctx):
    import shutil

    shutil.copyfile(src, dst)
    return ["copied"]
