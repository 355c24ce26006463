import os

import pytest
import torch

# Nothing may download in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests are timed by nobody, but 1 thread keeps them deterministic and polite on 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_pipe():
    from disco_inspect.testing import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture
def tiny_clf():
    from disco_inspect.testing import tiny_classifier

    return tiny_classifier(seed=0)


@pytest.fixture(scope="session")
def world_pipeline():
    """The bundled world's pipeline, loaded once per session and shared by every test that only generates with it.

    A test that adds a token (``train_token``, ``install_token``, a token run's ``install``, a benchmark that
    installs tokens) changes the tokenizer and the text encoder: it takes :func:`new_world_pipeline` instead. The
    check at the end of the session fails if the shared pipeline gained a token.
    """
    from disco_inspect.models.pipelines import load_pipeline

    pipe = load_pipeline("world")
    vocab = len(pipe.tokenizer)
    yield pipe
    assert len(pipe.tokenizer) == vocab, (
        "a test added a token to the shared world pipeline; use new_world_pipeline"
    )


@pytest.fixture(scope="session")
def new_world_pipeline():
    """Load a new world pipeline of its own (0.1 s after the session's first load), for a test that adds a token."""
    from disco_inspect.models.pipelines import load_pipeline

    return lambda: load_pipeline("world")


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """A tiny pipeline saved as a diffusers folder and a tiny classifier saved as TorchScript."""
    from disco_inspect.models.classifiers import save_torchscript_classifier
    from disco_inspect.testing import tiny_classifier, tiny_pipeline

    root = tmp_path_factory.mktemp("assets")
    tiny_pipeline(seed=0).save_pretrained(root / "pipe")
    clf = tiny_classifier(seed=0)
    save_torchscript_classifier(
        clf.module, root / "clf.pt", label_names=clf.label_names, preprocessing=clf.preprocessing.to_dict()
    )
    return root
