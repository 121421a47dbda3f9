"""crossfuse-leafspot: plant disease from leaf photos, a third-party crossfuse plugin.

It adds one of each thing a plugin can add: a backbone (``leaf-cnn``), a task (``leaf-disease``),
two dataset formats (``plantvillage`` folders and ``leaf-csv`` manifests), a metric
(``missed-disease``) and a command (``crossfuse leafspot-severity``).

crossfuse imports this module on every command, ``--help`` included, so it registers names and
``"module:attribute"`` strings only: torch and the task module are imported when a run needs them.
"""

from crossfuse import hookimpl

TASK = "leaf-disease"


@hookimpl
def register_backbones(register):
    register("leaf-cnn", "crossfuse_leafspot.backbone:build_leaf_cnn", modality="image", feature_dim=64,
             description="4-block CNN over RGB + the excess-green index, random init (leaf lesions)")


@hookimpl
def register_tasks(register):
    register(TASK, "crossfuse_leafspot.task:LeafDiseaseTask", modality="image",
             config="crossfuse_leafspot:defaults.yaml",
             description="Plant disease from a leaf photo: healthy, early blight, common rust, powdery mildew ...")


@hookimpl
def register_datasets(register):
    register("plantvillage", "crossfuse_leafspot.plantvillage:read_plantvillage", tasks=[TASK],
             detect="crossfuse_leafspot.plantvillage:is_plantvillage",
             layout="Crop___Disease class folders, optionally inside train/ valid/ test/",
             description="PlantVillage layout: Crop___Disease/ folders of leaf photos (and its train/valid splits)")
    register("leaf-csv", "crossfuse_leafspot.data:read_manifest", tasks=[TASK], extensions=[".csv"],
             detect="crossfuse_leafspot.data:is_split_folder", layout="a folder holding train.csv",
             description="CSV manifest of image,label rows, or a folder of train/validation/test.csv")


@hookimpl
def register_metrics(register):
    register("missed-disease", "crossfuse_leafspot.metrics:missed_disease",
             description="share of diseased samples predicted healthy (lower is better); needs probabilities, labels")


@hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)
