"""The evaluation's metrics against hand-computed answers (sklearn is not installed here, so
each expectation is written out, or computed by an obvious double loop)."""
import numpy as np
import pytest

pytest.importorskip("torch")

from usclip_sdk import taxonomy as tx  # noqa: E402
from usclip_train.evaluate import metrics as m  # noqa: E402


def test_one_hot_three_of_four_right():
    # images are one-hot, class weights are one-hot: sample 3 (class 3) looks like class 0
    img = np.eye(4)[[0, 1, 2, 0]]
    w = np.eye(4)
    t = np.eye(4, dtype=bool)[[0, 1, 2, 3]]
    r = m.classification_metrics(m.zeroshot_logits(img, w), t, topk=(1,))
    assert r["acc1"] == pytest.approx(0.75)
    assert r["per_class_recall"] == [1.0, 1.0, 1.0, 0.0]
    assert r["mean_per_class_recall"] == pytest.approx(0.75)
    assert r["confusion"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]


def test_balanced_accuracy_differs_from_accuracy_on_imbalance():
    # always predicts class 0: acc 3/4, balanced accuracy (1 + 0) / 2 (sklearn's balanced_accuracy_score)
    scores = np.array([[1.0, 0.0]] * 4)
    t = np.eye(2, dtype=bool)[[0, 0, 0, 1]]
    r = m.classification_metrics(scores, t)
    assert r["acc1"] == pytest.approx(0.75)
    assert r["mean_per_class_recall"] == pytest.approx(0.5)
    assert r["acc5"] is None  # trivially 1 with 2 classes: not reported
    assert r["support"] == [3, 1]


def test_top5_and_absent_classes():
    # 7 classes; true class rank: 1, 3, 6 -> acc1 1/3, acc5 2/3
    scores = np.array([
        [9, 1, 2, 3, 4, 5, 6],
        [9, 8, 7, 1, 2, 3, 4],   # class 2 is 3rd
        [9, 8, 7, 6, 5, 4, 1],   # class 5 is 6th
    ], dtype=float)
    t = np.zeros((3, 7), bool)
    t[0, 0] = t[1, 2] = t[2, 5] = True
    r = m.classification_metrics(scores, t, topk=(1, 5))
    assert r["acc1"] == pytest.approx(1 / 3)
    assert r["acc5"] == pytest.approx(2 / 3)
    # only classes 0, 2, 5 have support; recall 1, 0, 0
    assert r["n_classes_present"] == 3
    assert r["mean_per_class_recall"] == pytest.approx(1 / 3)
    assert r["per_class_recall"][1] is None


def test_multi_tag_and_missing_tag_rules():
    scores = np.array([
        [0.1, 0.2, 0.9, 0.0],   # tags {1, 2}, predicts 2: right, reference tag 2
        [0.1, 0.8, 0.0, 0.3],   # tags {0, 3}, predicts 1: wrong, reference = best-scored tag 3
        [0.9, 0.0, 0.0, 0.0],   # no tag: excluded
        [0.0, 0.0, 0.0, 0.5],   # tag {3}, right
    ])
    t = np.zeros((4, 4), bool)
    t[0, [1, 2]] = True
    t[1, [0, 3]] = True
    t[3, 3] = True
    r = m.classification_metrics(scores, t, topk=(1, 2))
    assert r["n_samples"] == 3 and r["n_multi_tag"] == 2
    assert r["acc1"] == pytest.approx(2 / 3)
    assert r["acc2"] == pytest.approx(1.0)     # sample 1 has tag 3 in its top 2
    # reference tags 2, 3, 3 -> recall class 2 = 1, class 3 = 1/2
    assert r["per_class_recall"] == [None, None, 1.0, 0.5]
    assert r["mean_per_class_recall"] == pytest.approx(0.75)
    cm = np.array(r["confusion"])
    assert cm.trace() == 2 and cm.sum() == 3 and cm[3, 1] == 1


def test_all_samples_untagged_gives_empty_dimension():
    r = m.classification_metrics(np.ones((3, 5)), np.zeros((3, 5), bool))
    assert r["n_samples"] == 0 and r["acc1"] is None and r["mean_per_class_recall"] is None


def test_zeroshot_averages_skip_unlabelled_dimensions():
    img = np.eye(5)[[0, 1, 2]]
    weights = {"Diagnosis": np.eye(5), "Vascularity": np.eye(5)}
    targets = {"Diagnosis": np.eye(5, dtype=bool)[[0, 1, 0]],      # 2 of 3 right
               "Vascularity": np.zeros((3, 5), bool)}              # nothing labelled
    r = m.zeroshot_metrics(img, weights, targets)
    assert r["dimensions_averaged"] == ["Diagnosis"]
    assert r["AvgAcc"] == pytest.approx(2 / 3)
    # refs [0, 1, 0], preds [0, 1, 2]: recall class 0 = 1/2, class 1 = 1 -> 0.75
    assert r["AvgRecall"] == pytest.approx(0.75)
    assert r["per_dimension"]["Vascularity"]["acc1"] is None


def test_zeroshot_logits_are_100_cosine():
    img = np.array([[3.0, 4.0]])
    w = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert m.zeroshot_logits(img, w) == pytest.approx(np.array([[60.0, 80.0]]))


def test_targets_for_reads_labels_dicts():
    labels = [{"Margins": ("well-defined",)}, {"Margins": ("ILL-DEFINED/INDISTINCT", "well-defined")}, {}]
    t = m.targets_for(labels, "Margins")
    assert t.tolist() == [[True, False], [True, True], [False, False]]
    with pytest.raises(tx.UnknownLabelError):
        m.targets_for([{"Margins": ("fuzzy",)}], "Margins")


def test_binary_auc_matches_pair_count():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=40), 1)  # rounding makes ties
    y = rng.random(40) < 0.4
    pos, neg = s[y], s[~y]
    want = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))
    assert m.binary_auc(s, y) == pytest.approx(want)
    assert m.binary_auc(s, np.zeros(40, bool)) is None


def test_retrieval_ranks_known_matrix():
    S = np.array([[0.9, 0.1, 0.2, 0.3],
                  [0.8, 0.5, 0.7, 0.1],
                  [0.1, 0.2, 0.3, 0.3],    # tie with a negative counts against the query
                  [0.0, 0.0, 0.0, 0.4]])
    # image = identity, text = S^T  ->  image @ text.T == S
    i2t, t2i = m.retrieval_ranks(np.eye(4), S.T, normalize=False, chunk=3)
    assert i2t.tolist() == [1, 3, 2, 1]
    assert t2i.tolist() == [1, 1, 2, 1]
    r = m.rank_metrics(i2t, t2i, ks=(1, 2, 5))
    assert r["i2t_R@1"] == 0.5 and r["i2t_R@2"] == 0.75 and r["i2t_R@5"] == 1.0
    assert r["t2i_R@1"] == 0.75 and r["image_retrieval_recall@1"] == 0.75
    assert r["text_retrieval_recall@1"] == 0.5


def test_collapsed_embeddings_score_worst_not_best():
    i2t, t2i = m.retrieval_ranks(np.ones((5, 3)), np.ones((5, 3)))
    assert i2t.tolist() == [5] * 5 and t2i.tolist() == [5] * 5


def _brute_ranks(img, txt, t2i_map):
    sim = m.l2_normalize(img) @ m.l2_normalize(txt).T
    i2t = []
    for i in range(len(img)):
        own = [j for j in range(len(txt)) if t2i_map[j] == i]
        if not own:
            i2t.append(0)
            continue
        best = max(sim[i, j] for j in own)
        i2t.append(1 + sum(1 for j in range(len(txt)) if j not in own and sim[i, j] >= best))
    t2i = [1 + sum(1 for i in range(len(img)) if i != t2i_map[j] and sim[i, j] >= sim[t2i_map[j], j])
           for j in range(len(txt))]
    return i2t, t2i


def test_retrieval_several_captions_per_image_matches_brute_force():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(7, 5))
    t2i_map = np.array([0, 0, 1, 2, 2, 2, 3, 4, 5, 5])  # image 6 has no caption
    txt = img[t2i_map] + 0.8 * rng.normal(size=(10, 5))
    i2t, t2i = m.retrieval_ranks(img, txt, t2i_map, chunk=2)
    want_i2t, want_t2i = _brute_ranks(img, txt, t2i_map)
    assert i2t.tolist() == want_i2t and t2i.tolist() == want_t2i
    assert i2t[6] == 0
    r = m.retrieval_metrics(img, txt, t2i_map, ks=(1, 3))
    assert r["i2t_R@3"] == pytest.approx(np.mean([x <= 3 for x in want_i2t[:6]]))
    assert r["n_images"] == 7 and r["n_texts"] == 10


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="targets"):
        m.classification_metrics(np.zeros((3, 4)), np.zeros((3, 5), bool))
    with pytest.raises(ValueError, match="text_to_image"):
        m.retrieval_ranks(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="width"):
        m.zeroshot_logits(np.zeros((3, 4)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="2-D"):
        m.retrieval_ranks(np.zeros(3), np.zeros(3))


@pytest.mark.parametrize("n,c", [(30, 3), (50, 6)])
def test_single_label_metrics_match_textbook_loops(n, c):
    rng = np.random.default_rng(n)
    scores = rng.normal(size=(n, c))
    y = rng.integers(0, c, n)
    r = m.classification_metrics(scores, np.eye(c, dtype=bool)[y], topk=(1, 2))
    pred = scores.argmax(1)
    assert r["acc1"] == pytest.approx(np.mean(pred == y))
    recalls = [np.mean(pred[y == k] == k) for k in range(c) if (y == k).any()]
    assert r["mean_per_class_recall"] == pytest.approx(np.mean(recalls))
    top2 = [y[i] in np.argsort(-scores[i])[:2] for i in range(n)]
    assert r["acc2"] == pytest.approx(np.mean(top2))
    cm = np.zeros((c, c), int)
    for a, b in zip(y, pred):
        cm[a, b] += 1
    assert r["confusion"] == cm.tolist()
