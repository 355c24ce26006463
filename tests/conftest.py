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
