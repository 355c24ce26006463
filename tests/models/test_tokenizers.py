import open_clip

from disco_inspect.models.tokenizers import CLIP_VOCAB_SIZE, clip_tokenizer


def test_matches_open_clip_ids():
    tok = clip_tokenizer()
    assert len(tok) == CLIP_VOCAB_SIZE
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    ref = open_clip.get_tokenizer("ViT-B-32")
    for text in [
        "A high resolution realistic image of an American lobster!",
        "tiger cat, 3 birds; naïve café",
    ]:
        ids = ref([text])[0].tolist()
        ids = ids[: ids.index(49407) + 1]
        assert tok(text).input_ids == ids


def test_added_token_is_one_id():
    tok = clip_tokenizer()
    tok.add_tokens("<S>")
    ids = tok("a photo of a <S> lobster").input_ids
    assert ids.count(tok.convert_tokens_to_ids("<S>")) == 1
    assert len(ids) == 8  # bos a photo of a <S> lobster eos
