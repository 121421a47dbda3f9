"""crossfuse-finance: sentiment of financial news (positive / negative / neutral).

Registers the ``finance-sentiment`` task and its dataset formats (Financial PhraseBank
``Sentences_*.txt``, CSV, TSV, JSONL). Nothing here imports torch: the
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
    register("phrasebank", "crossfuse_finance.data:read_phrasebank", tasks=[TASK], extensions=[".txt"],
             description="Financial PhraseBank Sentences_*.txt: text@label per line, latin-1")
    register("csv", "crossfuse_finance.data:read_csv", tasks=[TASK], extensions=[".csv"],
             description="CSV with a text and a label column (data.text_column / data.label_column)")
    register("tsv", "crossfuse_finance.data:read_tsv", tasks=[TASK], extensions=[".tsv"],
             description="Tab-separated file with a text and a label column")
    register("jsonl", "crossfuse_finance.data:read_jsonl", tasks=[TASK], extensions=[".jsonl", ".json"],
             description="JSON Lines, one object per line with text and label keys")

