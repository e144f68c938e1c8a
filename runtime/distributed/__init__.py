"""edgembed.distributed: bulk embedding on a Ray cluster into Parquet files (the `ray`
extra: Ray Data and pyarrow, imported only when a job runs).

`embed_to_parquet` (inputs.py plans the parts, embed.py runs them, parquet.py writes and
reads the files); `embed_dataset` (dataset.py) adds vector columns to a Ray Dataset you
have; `edgembed.index.shards` turns the files into searchable index shards."""

from .dataset import embed_dataset
from .embed import EmbedReport, embed_to_parquet
from .inputs import BadRow, Fields, plan_parts
from .parquet import VECTOR_COLUMNS, parquet_files, read_batches

__all__ = ["VECTOR_COLUMNS", "BadRow", "EmbedReport", "Fields", "embed_dataset", "embed_to_parquet",
           "parquet_files", "plan_parts", "read_batches"]
