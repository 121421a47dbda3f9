"""Example plugin: registers a dataset format and a metric. Importing it is cheap (no torch)."""

from crossfuse import hookimpl


@hookimpl
def register_datasets(register):
    register("semicolon-csv", "crossfuse_semicolon.reader:read_semicolon_csv", tasks=["finance-sentiment"],
             description="';'-separated spreadsheet export with text and label columns")


@hookimpl
def register_metrics(register):
    register("balanced-accuracy", "sklearn.metrics:balanced_accuracy_score",
             description="mean recall over classes (scikit-learn)")
