"""crossfuse-finance: sentiment of financial news (positive / negative / neutral).

Registers the ``finance-sentiment`` task, its dataset formats (Financial PhraseBank
``Sentences_*.txt``, CSV, TSV, JSONL) and its metrics. Nothing here imports torch: the
targets are ``"module:attr"`` strings resolved when a run needs them.
"""

from crossfuse import hookimpl

TASK = "finance-sentiment"


@hookimpl
def register_tasks(register):
    register(TASK, "crossfuse_finance.task:FinanceSentimentTask", modality="text",
             config="crossfuse_configs:finance-sentiment.yaml",
             description="Sentiment of financial news and headlines: positive / negative / neutral")


@hookimpl
def register_datasets(register):
    register("phrasebank", "crossfuse_finance.data:read_phrasebank", tasks=[TASK],
             description="Financial PhraseBank Sentences_*.txt: text@label per line, latin-1")
    register("csv", "crossfuse_finance.data:read_csv", tasks=[TASK],
             description="CSV with a text and a label column (data.text_column / data.label_column)")
    register("tsv", "crossfuse_finance.data:read_tsv", tasks=[TASK],
             description="Tab-separated file with a text and a label column")
    register("jsonl", "crossfuse_finance.data:read_jsonl", tasks=[TASK],
             description="JSON Lines, one object per line with text and label keys")


@hookimpl
def register_metrics(register):
    register("classification", "crossfuse_finance.metrics:classification_metrics",
             description="accuracy, macro-F1, per-class precision/recall/F1, confusion matrix (scikit-learn)")
    register("tfidf-logreg", "crossfuse_finance.metrics:tfidf_baseline",
             description="TF-IDF + logistic-regression baseline (scikit-learn) on the same splits")
