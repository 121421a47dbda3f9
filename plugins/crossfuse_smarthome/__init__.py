"""crossfuse-smarthome: keyword spotting for smart-home voice commands.

Registers the ``smarthome-voice-commands`` task, the ``speech-commands`` dataset format (the
Google Speech Commands layout, :mod:`crossfuse_smarthome.speech_commands`), the BC-ResNet
keyword-spotting backbones (:mod:`crossfuse_smarthome.kws`) and the ``accuracy-per-voice``
metric. Nothing here imports torch: the targets are ``"module:attr"`` strings resolved when a
run needs them.

The rest of the package: the task (:mod:`~crossfuse_smarthome.task`) and its model
(:mod:`~crossfuse_smarthome.model`), audio loading and augmentation (:mod:`~crossfuse_smarthome.audio`),
the streaming detector (:mod:`~crossfuse_smarthome.streaming`) and its operating point
(:mod:`~crossfuse_smarthome.operating_point`), the action table (:mod:`~crossfuse_smarthome.actions`),
predictions (:mod:`~crossfuse_smarthome.predictions`), spectrogram saliency
(:mod:`~crossfuse_smarthome.explain`), and the shipped demo (:mod:`~crossfuse_smarthome.demo`, made by
:mod:`~crossfuse_smarthome.make_demo_data` with noise from :mod:`~crossfuse_smarthome.noise`).
"""

from crossfuse import hookimpl

TASK = "smarthome-voice-commands"

# BC-ResNet-τ sizes of the paper (Kim et al. 2021); the clip vector has 32τ features.
BC_RESNET_WIDTHS = {"bc-resnet-1": 1, "bc-resnet-1.5": 1.5, "bc-resnet-2": 2, "bc-resnet-3": 3,
                    "bc-resnet-6": 6, "bc-resnet-8": 8}


@hookimpl
def register_tasks(register):
    register(TASK, "crossfuse_smarthome.task:VoiceCommandTask", modality="audio",
             config="crossfuse_configs:smarthome-voice-commands.yaml",
             description="Smart-home voice commands: keyword spotting, streaming detection, command -> action")


@hookimpl
def register_datasets(register):
    register("speech-commands", "crossfuse_smarthome.speech_commands:read_speech_commands", tasks=[TASK],
             detect="crossfuse_smarthome.speech_commands:is_speech_commands",
             layout="a folder of word folders (WORD/SPEAKER_nohash_N.wav), with validation_list.txt, "
                    "testing_list.txt and _background_noise_/ when it has them",
             description="Google Speech Commands: _unknown_ from other word folders, _silence_ cut from "
                         "_background_noise_ (never a word)")


@hookimpl
def register_backbones(register):
    for name, tau in BC_RESNET_WIDTHS.items():
        target = f"crossfuse_smarthome.kws:build_bc_resnet_{str(tau).replace('.', '_')}"
        register(name, target, modality="audio", feature_dim=round(32 * tau),
                 description=f"BC-ResNet-{tau:g} keyword spotter on 40 log-mel bins (broadcasted residual CNN, "
                             f"random init)")


@hookimpl
def register_metrics(register):
    register("accuracy-per-voice", "crossfuse_smarthome.metrics:accuracy_per_voice",
             description="accuracy of each speaker's clips; needs outputs probabilities, labels and samples "
                         "with a speaker attribute")
