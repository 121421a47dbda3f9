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
    register("lfw-pairs", "crossfuse_face.lfw:read_pairs", tasks=[TASK],
             description="LFW pairs.txt (10 folds) or pairsDevTrain/pairsDevTest.txt over name/name_0001.jpg")
    register("identity-folders", "crossfuse_face.lfw:read_identity_folders", tasks=[TASK],
             description="One folder of images per person (training identities, galleries)")


@hookimpl
def register_metrics(register):
    register("verification", "crossfuse_face.metrics:verification_metrics",
             description="LFW 10-fold accuracy, ROC AUC, EER, TAR@FAR (scikit-learn curves)")
    register("rank1", "crossfuse_face.metrics:rank1_identification",
             description="Closed-set rank-1 (and rank-5) identification by cosine similarity")
