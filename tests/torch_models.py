"""Small PyTorch modules for the native tests: importable, so a factory or a whole pickled module loads."""

import warnings

import torch


class TinyCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


class TwoHeads(torch.nn.Module):
    """Two inputs, two outputs (a tuple): names and order must survive the conversion."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(6, 3)
        self.b = torch.nn.Linear(2, 3)

    def forward(self, x, y):
        h = self.a(x) + self.b(y)
        return torch.softmax(h, dim=-1), h.sum(dim=-1, keepdim=True)


def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN()


def wrong_architecture() -> torch.nn.Module:
    return torch.nn.Linear(3, 3)


@torch.library.custom_op("perfkit_tests::sharpen", mutates_args=())
def sharpen(x: torch.Tensor) -> torch.Tensor:
    """An op of the user's own: no exporter knows how to write it in ONNX."""
    return x * 2


@sharpen.register_fake
def _(x):
    return torch.empty_like(x)


class UsesCustomOp(torch.nn.Module):
    def forward(self, x):
        return sharpen(x) + 1


VOCAB = 10  # rows of TokenModel's embedding: example ids must stay below it


class TokenModel(torch.nn.Module):
    """Token ids through an embedding, outputs in a dict, as transformers models take and return them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, input_ids):
        hidden = self.embed(input_ids)
        return {"logits": self.head(hidden).mean(1), "last_hidden_state": hidden}


def token_model() -> TokenModel:
    torch.manual_seed(0)
    return TokenModel().eval()


class FixedBatch(torch.nn.Module):
    """Runs only at batch 1, as a module traced with a reshape to its traced shape does."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(x).reshape(1, 4)


class PackedPositions(torch.nn.Module):
    """What a causal LM traced with input_ids alone does to find packed sequences: torch.diff with a prepended
    column, then the cumulative sum of a bool."""

    def forward(self, positions):
        first = positions[:, :1] - 1
        return (torch.diff(positions, prepend=first, dim=-1) != 1).cumsum(-1)


# Real exports of transformers with random weights, as their users make them (the fusion and bench tests).

def export(module, args, names, path, dynamo, fixed=False):
    """Batch and sequence free, or with `fixed` none: the dynamo exporter then folds the causal mask and the
    rotary tables into initializers."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = None if fixed else ({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},) * len(args)
            torch.onnx.export(module, args, str(path), input_names=names, dynamo=True, dynamic_shapes=dims,
                              verbose=False)
        else:
            axes = {n: {0: "batch", 1: "seq"} for n in names}
            torch.onnx.export(module, args, str(path), input_names=names, dynamo=False, opset_version=17,
                              dynamic_axes=axes)
    return path


def Hidden(model):  # noqa: N802 - reads as the wrapper's name
    """The model's last hidden state, or a language model's logits, as its one output (HF models return dicts
    and caches)."""
    import torch

    class _Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x, attention_mask=None):
            if x.dtype.is_floating_point:
                return self.model(pixel_values=x).last_hidden_state
            out = self.model(input_ids=x, attention_mask=attention_mask)
            return out.logits if "logits" in out else out.last_hidden_state

    return _Hidden().eval()
