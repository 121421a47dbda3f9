"""crossfuse-driving: 2D object detection for autonomous driving (cars, pedestrians, cyclists).

Registers the ``driving-detection`` task, its dataset formats (KITTI, COCO JSON, Pascal VOC XML)
and its metrics (COCO mAP by pycocotools, KITTI AP). Nothing here imports torch: the targets are
``"module:attr"`` strings resolved when a run needs them.
"""

from crossfuse import hookimpl

TASK = "driving-detection"


@hookimpl
def register_tasks(register):
    register(TASK, "crossfuse_driving.task:DrivingDetectionTask", modality="image",
             config="crossfuse_configs:driving-detection.yaml",
             description="Cars, pedestrians and cyclists in road scenes: torchvision detectors, COCO and KITTI AP")


@hookimpl
def register_datasets(register):
    # auto: KITTI and VOC by their folders (cheap detect functions), COCO by its .json extension
    register("kitti", "crossfuse_driving.readers:kitti_reader", tasks=[TASK], detect="crossfuse_driving.readers:is_kitti",
             layout="a folder with label_2/ and image_2/, or its parent with training/label_2/",
             description="KITTI object training/{image_2,label_2}: 15 columns per object, DontCare regions")
    register("coco", "crossfuse_driving.readers:coco_reader", tasks=[TASK], extensions=[".json"],
             description="COCO instances JSON: bbox [x, y, w, h], iscrowd regions ignored")
    register("voc", "crossfuse_driving.readers:voc_reader", tasks=[TASK], detect="crossfuse_driving.readers:is_voc",
             layout="a folder with Annotations/ and JPEGImages/",
             description="Pascal VOC Annotations/*.xml + JPEGImages, with the difficult flag")


@hookimpl
def register_metrics(register):
    # Parameters (detections, samples, task): `--set eval.metrics=[kitti-ap]` adds them by name.
    register("coco-map", "crossfuse_driving.metrics:coco_map",
             description="COCO mAP@[.5:.95], mAP@.5, mAP@.75, by size and per class (pycocotools)")
    register("kitti-ap", "crossfuse_driving.metrics:kitti_map",
             description="KITTI 2D AP|R40 per class at easy / moderate / hard (Car IoU 0.7, others 0.5)")
