"""install_token / TokenRun.install: a token already in the pipeline gets the new file's embedding."""

import pytest
import torch

from disco_inspect import DiscoConfig, DiscoInspectError
from disco_inspect.engine.sampling import generate
from disco_inspect.engine.token import install_token, save_token
from disco_inspect.engine.token_run import TokenRun


def _row(pipe, token):
    return pipe.text_encoder.get_input_embeddings().weight[pipe.tokenizer.convert_tokens_to_ids(token)]


def _images(pipe):
    return generate(pipe, ["a photo of a <S> circle"], [7], num_inference_steps=2, guidance_scale=1.0)


def test_second_file_with_same_token_replaces_the_embedding(tiny_pipe, tmp_path):
    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1]
    a, b = (
        torch.randn(width, generator=torch.Generator().manual_seed(1)),
        torch.randn(width, generator=torch.Generator().manual_seed(2)),
    )
    fa, fb = (
        save_token(tmp_path / "a.safetensors", "<S>", a),
        save_token(tmp_path / "b" / "t.safetensors", "<S>", b),
    )
    assert install_token(tiny_pipe, fa) == "<S>"
    torch.testing.assert_close(_row(tiny_pipe, "<S>"), a)
    images_a = _images(tiny_pipe)
    n_rows = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[0]
    assert install_token(tiny_pipe, fb) == "<S>"
    torch.testing.assert_close(_row(tiny_pipe, "<S>"), b)
    assert tiny_pipe.text_encoder.get_input_embeddings().weight.shape[0] == n_rows, "no second row was added"
    assert not torch.allclose(_images(tiny_pipe), images_a), "the images still use file A's embedding"


def test_width_mismatch_names_both_widths(tiny_pipe, tmp_path):
    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1]
    install_token(tiny_pipe, save_token(tmp_path / "ok.safetensors", "<S>", torch.zeros(width)))
    wide = save_token(tmp_path / "wide.safetensors", "<S>", torch.zeros(width * 2))
    with pytest.raises(DiscoInspectError, match=rf"{width * 2}.*{width}.*another pipeline"):
        install_token(tiny_pipe, wide)  # the token exists already
    fresh_tok = save_token(tmp_path / "wide2.safetensors", "<T>", torch.zeros(width * 2))
    with pytest.raises(DiscoInspectError, match=rf"{width * 2}.*{width}.*another pipeline"):
        install_token(tiny_pipe, fresh_tok)  # a new token


def test_a_word_of_the_vocabulary_is_not_overwritten(tiny_pipe, tmp_path):
    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1]
    before = _row(tiny_pipe, "cat</w>").clone()
    with pytest.raises(DiscoInspectError, match="cat</w>"):
        install_token(tiny_pipe, save_token(tmp_path / "cat.safetensors", "cat</w>", torch.ones(width)))
    assert torch.equal(_row(tiny_pipe, "cat</w>"), before)


def _run(vector):
    return TokenRun(
        token="<S>",
        target=0,
        class_name="circle",
        config=DiscoConfig(),
        embedding=vector,
        initial_embedding=vector,
        best_step=0,
        stopped="max_iters",
        trajectory=[],
        baseline={},
    )


def test_token_run_install_shares_the_logic(tiny_pipe):
    width = tiny_pipe.text_encoder.get_input_embeddings().weight.shape[1]
    a, b = torch.full((width,), 0.5), torch.full((width,), -0.5)
    _run(a).install(tiny_pipe)
    _run(b).install(tiny_pipe)
    torch.testing.assert_close(_row(tiny_pipe, "<S>"), b)
    with pytest.raises(DiscoInspectError, match=rf"{width + 1}.*{width}.*another pipeline"):
        _run(torch.zeros(width + 1)).install(tiny_pipe)


def test_replacing_a_token_works_where_gradients_are_on(tiny_pipe):
    """Overwriting an installed token's row is not an autograd operation, even with trainable embeddings and
    gradients enabled (put_token runs without gradients)."""
    from disco_inspect.engine.token import put_token

    emb = tiny_pipe.text_encoder.get_input_embeddings()
    emb.weight.requires_grad_(True)
    width = emb.weight.shape[-1]
    with torch.enable_grad():
        put_token(tiny_pipe, "<grad-token>", torch.zeros(width))
        put_token(tiny_pipe, "<grad-token>", torch.ones(width))
    row = emb.weight[tiny_pipe.tokenizer.convert_tokens_to_ids("<grad-token>")]
    assert torch.equal(row.detach(), torch.ones(width)) and emb.weight.grad_fn is None


def test_a_token_installed_from_a_file_can_be_trained_again():
    """A finished run reused in one process installs its token (put_token); training the next class in the same
    pipeline then reuses that row instead of refusing '<S>' as a word someone else added (the randomised benchmark
    stopped at its second case after resuming the first)."""
    from disco_inspect.engine.token import ClassToken, put_token
    from disco_inspect.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    put_token(pipe, "<S>", torch.randn(width, generator=torch.Generator().manual_seed(3)))
    ct = ClassToken(pipe, "<S>")
    assert ct.token_id == pipe.tokenizer.convert_tokens_to_ids("<S>")
    assert len(pipe.tokenizer) == len(tiny_pipeline(seed=0).tokenizer) + 1  # one row, reused
