"""From a query to ranked hits: dense, lexical and hybrid ranking, fusion, filters, reranking."""
