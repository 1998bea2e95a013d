from models.typethrough import TypeThroughCache


def test_typing_the_suggestion_answers_the_rest_without_the_model():
    cache = TypeThroughCache()
    cache.store("a.py", "x = ", "\nprint(x)\n", "total(items)")
    assert cache.lookup("a.py", "x = ", "\nprint(x)\n") == "total(items)"
    assert cache.lookup("a.py", "x = tot", "\nprint(x)\n") == "al(items)"
    assert cache.lookup("a.py", "x = total(items", "\nprint(x)\n") == ")"


def test_diverging_text_other_documents_and_finished_suggestions_miss():
    cache = TypeThroughCache()
    cache.store("a.py", "x = ", "\n", "total(items)")
    assert cache.lookup("a.py", "x = tox", "\n") is None  # typed something else
    assert cache.lookup("a.py", "x = t", ")\n") is None  # text after the cursor changed
    assert cache.lookup("a.py", "y = t", "\n") is None  # an edit before the anchor
    assert cache.lookup("b.py", "x = t", "\n") is None
    assert cache.lookup("a.py", "x = total(items)", "\n") is None  # nothing left to offer
    cache.store("a.py", "x = ", "\n", "")  # an empty answer clears the entry
    assert cache.lookup("a.py", "x = ", "\n") is None
