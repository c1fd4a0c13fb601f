"""The moto S3 fixture is a real HTTP endpoint: pyarrow and boto3 upload, list and read back."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.s3


def test_pyarrow_upload_list_and_read_back(s3_endpoint) -> None:
    fs = s3_endpoint.filesystem()
    table = pa.table({"user_id": [1, 2, 3], "amount": [1.5, None, 3.0]})
    path = f"{s3_endpoint.bucket}/{s3_endpoint.prefix}/part=a/data.parquet"
    pq.write_table(table, path, filesystem=fs)

    from pyarrow import fs as pafs

    listed = fs.get_file_info(
        pafs.FileSelector(f"{s3_endpoint.bucket}/{s3_endpoint.prefix}", recursive=True)
    )
    files = sorted(info.path for info in listed if info.type == pafs.FileType.File)
    assert files == [path]
    assert pq.read_table(path, filesystem=fs).equals(table)
    # boto3 sees the same object through the same endpoint
    assert s3_endpoint.keys() == [f"{s3_endpoint.prefix}/part=a/data.parquet"]


def test_boto3_upload_is_visible_to_pyarrow(s3_endpoint) -> None:
    client = s3_endpoint.client()
    client.put_object(Bucket=s3_endpoint.bucket, Key="raw/hello.csv", Body=b"a,b\n1,x\n2,y\n")
    body = client.get_object(Bucket=s3_endpoint.bucket, Key="raw/hello.csv")["Body"].read()
    assert body == b"a,b\n1,x\n2,y\n"

    import pyarrow.csv as pacsv

    with s3_endpoint.filesystem().open_input_stream(f"{s3_endpoint.bucket}/raw/hello.csv") as fh:
        table = pacsv.read_csv(fh)
    assert table.to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_each_test_gets_a_fresh_empty_bucket(s3_endpoint) -> None:
    assert s3_endpoint.keys(prefix="") == []
    assert s3_endpoint.uri == f"s3://{s3_endpoint.bucket}/{s3_endpoint.prefix}"
    assert 3 <= len(s3_endpoint.bucket) <= 63
