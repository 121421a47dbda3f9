"""crossfuse-face: face verification (1:1) and identification (1:N) for security.

Registers the ``security-face-match`` task, its dataset formats (LFW ``pairs.txt`` in both forms,
identity folders) and its metrics. Nothing here imports torch: the targets are ``"module:attr"``
strings resolved when a run needs them.
"""

from crossfuse import hookimpl

TASK = "security-face-match"


@hookimpl
def register_tasks(register):
    register(TASK, "crossfuse_face.task:SecurityFaceMatchTask", modality="image",
             config="crossfuse_configs:security-face-match.yaml",
             description="Face embeddings with ArcFace/CosFace; LFW verification, TAR@FAR, rank-1 identification")


@hookimpl
def register_datasets(register):
    # Readers are called as reader(path, options): identity readers return FaceImage lists, pairs readers
    # Pair lists (crossfuse_face.lfw); data.format picks the first kind, data.pairs_format the second.
    register("lfw-pairs", "crossfuse_face.lfw:read_lfw_pairs", tasks=[TASK], extensions=[".txt"],
             detect="crossfuse_face.lfw:is_lfw_folder", layout="a folder holding pairs.txt / pairsDevTest.txt",
             description="LFW pairs.txt (10 folds) or pairsDevTrain/pairsDevTest.txt over name/name_0001.jpg; "
                         "the file or its folder")
    register("identity-folders", "crossfuse_face.lfw:read_identity_dataset", tasks=[TASK],
             detect="crossfuse_face.lfw:is_identity_root", layout="a folder of per-person image folders",
             description="One folder of images per person, ROOT/NAME/*.jpg (training identities, galleries)")


@hookimpl
def register_metrics(register):
    register("verification", "crossfuse_face.metrics:verification",
             description="LFW 10-fold accuracy, ROC AUC, EER, TAR@FAR of a pairs split (from the embedding output)")
    register("rank1", "crossfuse_face.metrics:rank1",
             description="Closed-set rank-1 (and rank-5) identification among the images of a pairs split")
