"""crossfuse-medical: classification of medical images (binary, multi-class, multi-label), alone or
fused with the referral note that comes with each image.

Registers two tasks, ``medical-imaging`` (:mod:`.task`) and ``medical-image-report``
(:mod:`.image_report`, an image and a text backbone fused by :mod:`.fusion`), the readers for
MedMNIST ``.npz``, image folders, CSV tables of image paths and DICOM folders (:mod:`.formats`),
and two metrics any classification task can add with ``eval.metrics``. The synthetic chest
radiographs with referral notes used by the demo live in :mod:`.synth`, the metrics clinicians and
MedMNIST papers report in :mod:`.metrics`, their pictures in :mod:`.report`.

Nothing here imports torch: targets are ``"module:attr"`` strings resolved when a run needs them.
"""

from crossfuse import hookimpl

IMAGING = "medical-imaging"
IMAGE_REPORT = "medical-image-report"
TASKS = [IMAGING, IMAGE_REPORT]


@hookimpl
def register_tasks(register):
    register(IMAGING, "crossfuse_medical.task:MedicalImagingTask", modality="image",
             config="crossfuse_configs:medical-imaging.yaml",
             description="Findings on medical images (binary, multi-class or multi-label); AUROC, "
                         "sensitivity/specificity at a threshold chosen on validation, Grad-CAM")
    register(IMAGE_REPORT, "crossfuse_medical.image_report:MedicalImageReportTask", modality="image+text",
             config="crossfuse_configs:medical-image-report.yaml",
             description="Findings from a radiograph and its referral note, fused (concat, gated or "
                         "cross-attention); image-alone, text-alone and fused AUROC side by side")


@hookimpl
def register_datasets(register):
    register("medmnist", "crossfuse_medical.formats:read_medmnist", tasks=TASKS, extensions=[".npz"],
             detect="crossfuse_medical.formats:is_medmnist", layout="a .npz with train_images/train_labels ...",
             description="MedMNIST .npz: {train,val,test}_{images,labels} (grey or RGB, labels [N, L]); "
                         "optional label_names and {split}_notes")
    register("image-folder", "crossfuse_medical.formats:read_image_folder", tasks=TASKS,
             detect="crossfuse_medical.formats:is_image_folder",
             layout="a folder of class folders, or train/ val/ test/ each holding class folders",
             description="One folder of images (PNG, JPEG, TIFF, DICOM) per class, optionally under train/ val/ test/")
    register("image-csv", "crossfuse_medical.formats:read_image_csv", tasks=TASKS, extensions=[".csv", ".tsv"],
             detect="crossfuse_medical.formats:is_image_csv", layout="a .csv/.tsv of image paths and labels",
             description="CSV of image paths with a label column, several 0/1 columns, or findings joined by "
                         "data.label_separator; an optional note column")
    register("dicom-folder", "crossfuse_medical.formats:read_dicom_folder", tasks=TASKS,
             detect="crossfuse_medical.formats:is_dicom_folder",
             layout="a folder of .dcm files with one labels .csv (by file name or SOPInstanceUID)",
             description="DICOM files (pydicom: rescale, window, MONOCHROME1) labelled by a CSV")


@hookimpl
def register_metrics(register):
    # Parameters (probabilities, labels): any task whose predict_step gives those outputs can add
    # them by name, e.g. `--set eval.metrics=[auroc]` on finance-sentiment.
    register("auroc", "crossfuse_medical.metrics:macro_auroc",
             description="macro AUROC over classes (one-vs-rest) or findings; a class without positives or "
                         "negatives is left out (scikit-learn); needs outputs probabilities, labels")
    register("classwise-ece", "crossfuse_medical.metrics:classwise_ece",
             description="calibration error per output (sigmoid outputs: P(finding) against its frequency; "
                         "softmax: top label), 10 bins; needs outputs probabilities, labels")
