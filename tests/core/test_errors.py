from perfkit.core.errors import root_cause


def raised(make):
    try:
        make()
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def test_the_root_cause_is_the_first_error_behind_a_wrapper():
    def wrapped():
        try:
            raise ValueError("could not guard on data-dependent expression")
        except ValueError as exc:
            raise RuntimeError("Failed to export the model. This is step 1/3. Next steps: …") from exc

    assert root_cause(raised(wrapped)) == "ValueError: could not guard on data-dependent expression"


def test_a_quoted_traceback_gives_the_error_it_ends_with():
    text = ("The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript (most recent "
            "call last):\n  File \"code/m.py\", line 14, in forward\n" + "    x = self.embeddings(x)\n" * 20 +
            "RuntimeError: Expected tensor for argument #1 'indices' to have one of the following scalar types: Long")
    assert root_cause(RuntimeError(text)) == ("RuntimeError: Expected tensor for argument #1 'indices' to have one "
                                              "of the following scalar types: Long")


def test_a_suppressed_context_is_not_the_cause():
    def suppressed():
        try:
            raise KeyError("internal")
        except KeyError:
            raise TypeError("what the user did") from None

    assert root_cause(raised(suppressed)) == "TypeError: what the user did"
