"""Unit tests of the framework adapters' pure parts: filter mapping and citation metadata."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medrag.errors import QueryError
from medrag.retrieve.base import Filters
from medrag.types import Hit, Metadata


def _hit() -> Hit:
    meta = Metadata(pmid="123", doi="10.1/x", year=2020, mesh=("Humans", "Aspirin"), url=None, journal="")
    return Hit(chunk_id="pubmed:123#0", doc_id="pubmed:123", score=1.5, rank=1, text="t", title="T",
               section="RESULTS", source="pubmed", metadata=meta)


def test_hit_metadata_is_flat_and_drops_unknown_fields() -> None:
    from medrag.integrations._common import hit_metadata

    meta = hit_metadata(_hit())
    assert meta == {"chunk_id": "pubmed:123#0", "doc_id": "pubmed:123", "source": "pubmed", "title": "T",
                    "section": "RESULTS", "rank": 1, "score": 1.5, "pmid": "123", "doi": "10.1/x", "year": 2020,
                    "mesh": "Humans; Aspirin"}


def test_import_medrag_imports_no_integration_framework() -> None:
    code = (
        "import sys, medrag, medrag.integrations, medrag.cli, medrag.config; "
        "bad = [m for m in ('fastapi', 'uvicorn', 'starlette', 'llama_index', 'langchain_core', 'mcp') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


class TestLlamaIndexFilters:
    @pytest.fixture(autouse=True)
    def _li(self) -> None:
        pytest.importorskip("llama_index.core")

    def test_operators_map_to_medrag_filters(self) -> None:
        from llama_index.core.vector_stores.types import FilterOperator as Op
        from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

        from medrag.integrations.llama_index import medrag_filters

        f = MetadataFilters(filters=[
            MetadataFilter(key="source", value=["pubmed", "guidelines"], operator=Op.IN),
            MetadataFilter(key="source", value="pubmed", operator=Op.EQ),
            MetadataFilter(key="year", value=2015, operator=Op.GT),
            MetadataFilter(key="year", value=2020, operator=Op.LTE),
            MetadataFilters(filters=[MetadataFilter(key="doc_id", value=["pubmed:1", "pubmed:2"], operator=Op.IN)]),
        ])
        assert medrag_filters(f) == Filters(source=("pubmed",), year=(2016, 2020), doc_ids=("pubmed:1", "pubmed:2"))

    def test_year_bounds_intersect(self) -> None:
        from llama_index.core.vector_stores.types import FilterOperator as Op
        from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

        from medrag.integrations.llama_index import medrag_filters

        f = MetadataFilters(filters=[MetadataFilter(key="year", value=2010, operator=Op.GTE),
                                     MetadataFilter(key="year", value=2012, operator=Op.GTE),
                                     MetadataFilter(key="year", value=2019, operator=Op.LT)])
        assert medrag_filters(f).year == (2012, 2018)
        eq = MetadataFilters(filters=[MetadataFilter(key="year", value=2019, operator=Op.EQ)])
        assert medrag_filters(eq).year == (2019, 2019)

    @pytest.mark.parametrize("key,value,op,message", [
        ("source", "pubmed", "!=", "supports == and in"),
        ("year", 2019, "in", "supports =="),
        ("year", "soon", "==", "integer year"),
        ("pmid", "1", "==", "cannot filter on metadata key 'pmid'"),
        ("source", 3, "==", "must be strings"),
    ])
    def test_unsupported_filters_raise(self, key: str, value: object, op: str, message: str) -> None:
        from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

        from medrag.integrations.llama_index import medrag_filters

        f = MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=FilterOperator(op))])
        with pytest.raises(QueryError, match=message):
            medrag_filters(f)

    def test_or_condition_is_refused_and_mappings_pass_through(self) -> None:
        from llama_index.core.vector_stores.types import FilterCondition, MetadataFilter, MetadataFilters

        from medrag.integrations.llama_index import medrag_filters

        f = MetadataFilters(filters=[MetadataFilter(key="source", value="a"), MetadataFilter(key="source", value="b")],
                            condition=FilterCondition.OR)
        with pytest.raises(QueryError, match="AND only"):
            medrag_filters(f)
        assert medrag_filters({"source": "pubmed"}) == Filters(source=("pubmed",))
        assert medrag_filters(None) is None
