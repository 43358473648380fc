"""Models written the way their users write them, not tfperf's zoo: a keras-hub BERT text classifier (dict
inputs), a Keras 2 (tf_keras) model, and a recommendation model fed a dict of categorical ids and dense
features. Tiny configurations with random weights: nothing is downloaded. Needs `pip install -e ".[models]"`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SEQ_LEN = 16
VOCAB = 100


def bert_classifier(
    num_classes: int = 3, num_layers: int = 1, hidden_dim: int = 16, max_sequence_length: int = SEQ_LEN
):
    """keras_hub.models.BertTextClassifier on a tiny BertBackbone, no preprocessor: it takes
    {token_ids, segment_ids, padding_mask}, each (batch, sequence)."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        max_sequence_length=max_sequence_length,
    )
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=num_classes, preprocessor=None)


def bert_dataset(batch_size: int) -> tf.data.Dataset:
    """Tokenized text as a keras-hub preprocessor gives it: ({token_ids, segment_ids, padding_mask},
    label)."""
    rng = np.random.default_rng(0)
    n = 4 * batch_size
    lengths = rng.integers(4, SEQ_LEN + 1, size=n)
    mask = (np.arange(SEQ_LEN)[None, :] < lengths[:, None]).astype("int32")
    features = {
        "token_ids": (rng.integers(1, VOCAB, size=(n, SEQ_LEN)) * mask).astype("int32"),
        "segment_ids": np.zeros((n, SEQ_LEN), "int32"),
        "padding_mask": mask,
    }
    labels = rng.integers(0, 3, size=n).astype("int32")
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size, drop_remainder=True)


def keras2_mlp(features: int = 32, hidden: int = 64, classes: int = 10):
    """A Keras 2 Sequential, as much production TensorFlow code still builds one."""
    import tf_keras

    return tf_keras.Sequential(
        [
            tf_keras.layers.Input((features,)),
            tf_keras.layers.Dense(hidden, activation="relu", name="dense_0"),
            tf_keras.layers.Dense(hidden, activation="relu", name="dense_1"),
            tf_keras.layers.Dense(classes, name="logits"),
        ],
        name="keras2_mlp",
    )


def recommender(
    users: int = 1000,
    items: int = 500,
    categories: int = 20,
    dense_features: int = 8,
    dim: int = 16,
    keras: int = 3,
):
    """Two-tower style click model on a dict of features: categorical ids (user, item, category) through
    embedding tables, dense features through a Dense layer, one click logit. `keras: 2` builds the same in
    tf_keras."""
    if keras == 2:
        import tf_keras as k
    else:
        import keras as k

    ids = {
        name: k.Input(shape=(), dtype="int32", name=name) for name in ("user_id", "item_id", "category_id")
    }
    dense = k.Input(shape=(dense_features,), dtype="float32", name="dense_features")
    columns = [
        k.layers.Embedding(n, dim, name=f"{name}_embedding")(ids[name])
        for name, n in (("user_id", users), ("item_id", items), ("category_id", categories))
    ]
    columns.append(k.layers.Dense(dim, activation="relu", name="dense_tower")(dense))
    x = k.layers.Concatenate(name="features")(columns)
    x = k.layers.Dense(32, activation="relu", name="hidden")(x)
    out = k.layers.Dense(1, name="click_logit")(x)
    return k.Model({**ids, "dense_features": dense}, out, name="recommender")
