"""The own-data loader (xrec_helpers.data.interactions): tables in, Dataset out, clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xrec_helpers.data.interactions import InteractionsError, load_interactions

CSV = """customer,sku,stars,date,product
007,A-1,5,2024-01-02 10:00:00,M*A*S*H (1970)
007,B-2,3,2024-01-01 09:00:00,Snake_Eyes
u2,A-1,4,2024-01-03 00:00:00,M*A*S*H (1970)
u2,C-3,1,2024-01-04 00:00:00,
"""
COLUMNS = {"user": "customer", "item": "sku", "rating": "stars", "timestamp": "date", "title": "product"}


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text(CSV)
    return path


def test_csv_to_dataset(csv):
    d = load_interactions(csv, **COLUMNS)
    assert d.name == "shop" and (d.n_users, d.n_items, len(d.ratings)) == (2, 3, 4)
    assert d.users["raw_id"].tolist() == ["007", "u2"]  # ids kept as written: "007" is not the number 7
    assert d.items["raw_id"].tolist() == ["A-1", "B-2", "C-3"]
    assert d.user_index("007") == 0 and d.item_index("C-3") == 2
    assert list(d.ratings.columns) == ["user", "item", "rating", "timestamp"]
    # Sorted by user, then time: 007 bought B-2 before A-1.
    assert d.ratings[["user", "item"]].values.tolist() == [[0, 1], [0, 0], [1, 0], [1, 2]]
    assert d.ratings["rating"].tolist() == [3.0, 5.0, 4.0, 1.0]
    assert d.ratings["timestamp"].iloc[0] == int(pd.Timestamp("2024-01-01 09:00:00", tz="UTC").timestamp())
    assert d.titles([0, 1, 2]).tolist() == ["M*A*S*H (1970)", "Snake_Eyes", "item C-3"]  # a missing title: the id
    assert d.csr(binary=False)[0, 0] == 5.0


def test_defaults_and_optional_columns(tmp_path):
    frame = pd.DataFrame({"user": [3, 1, 3], "item": [10, 10, 20]})
    d = load_interactions(frame, name="plays")
    assert d.name == "plays" and d.users["raw_id"].tolist() == [1, 3]  # numbers stay numbers from a DataFrame
    assert (d.ratings["rating"] == 1.0).all()  # implicit feedback
    assert sorted(d.ratings["timestamp"]) == [0, 1, 2]  # the row order
    assert d.titles(0) == "item 10"
    auto = pd.DataFrame({"user": ["a"], "item": ["x"], "rating": [2.5], "timestamp": [1700000000], "title": ["X"]})
    d = load_interactions(auto)
    assert d.ratings["rating"].tolist() == [2.5] and d.ratings["timestamp"].tolist() == [1700000000]
    assert d.titles(0) == "X"
    d = load_interactions(auto, rating=None, title=None)  # None ignores a column that is there
    assert d.ratings["rating"].tolist() == [1.0] and d.titles(0) == "item x"


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "rating": [1.0, 2.0]})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    d = load_interactions(tmp_path / "t.parquet")
    assert (d.n_users, d.n_items) == (2, 2) and d.ratings["rating"].tolist() == [1.0, 2.0]


def test_missing_columns_are_named_with_the_fix(csv):
    with pytest.raises(InteractionsError, match=r"Missing column\(s\) \['user', 'item'\]: its header \(line 1\) "
                                                 r"has .*customer.*keyword"):
        load_interactions(csv)
    with pytest.raises(InteractionsError, match=r"\['score'\].*rating=None"):
        load_interactions(csv, user="customer", item="sku", rating="score")
    with pytest.raises(InteractionsError, match=r"\['sku'\]: its columns has"):
        load_interactions(pd.DataFrame({"customer": ["a"], "item": ["x"]}), user="customer", item="sku")


# Every message names the line(s) and says what to do (the part after the lines).
@pytest.mark.parametrize(("row", "message"), [
    (",A-1,5,2024-01-02,T", r"'customer' is empty in line 3: .*Remove or complete them"),
    ("u3,,5,2024-01-02,T", r"'sku' is empty in line 3: .*Remove or complete them"),
    ("u3,A-1,five,2024-01-02,T", r"'stars' must hold numbers \(line 3, e.g. 'five'\)\. Fix them, or pass rating=None"),
    ("u3,A-1,,2024-01-02,T", r"'stars' must hold numbers \(line 3"),
    ("u3,A-1,inf,2024-01-02,T", r"'stars' must hold numbers \(line 3"),
    ("u3,A-1,5,31/02/2024 25:00,T", r"'date' has values that are neither Unix seconds nor dates \(line 3, "
                                    r"e.g. '31/02/2024 25:00'\)\. Fix them: write real dates as year-month-day.*"
                                    r"timestamp=None"),
    ("u3,A-1,5,2024-01-02,other title", r"more than one title, e.g. item 'A-1': \['T', 'other title'\] "
                                        r"\(lines 2, 3\)\. Give each item one title .*title=None"),
])
def test_malformed_rows_are_refused_with_their_line_and_the_fix(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text("customer,sku,stars,date,product\nu1,A-1,4,2024-01-01,T\n" + row + "\n")
    with pytest.raises(InteractionsError, match=message):
        load_interactions(path, **COLUMNS)


def test_several_bad_lines_are_counted(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,item,rating\n" + "".join(f"u{i},x,?\n" for i in range(8)))
    with pytest.raises(InteractionsError, match=r"\(lines 2, 3, 4, 5, 6 and 3 more, e.g. '\?'\)"):
        load_interactions(path)


def test_mixed_timestamps_and_ragged_rows(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("user,item,timestamp\na,x,1700000000\nb,y,2024-01-01\n")
    with pytest.raises(InteractionsError, match=r"mixes numbers and other values \(line 3, .*timestamp=None"):
        load_interactions(path)
    path.write_text("user,item\na,x\nb,y,extra,fields\n")
    with pytest.raises(InteractionsError, match="not a well-formed CSV"):
        load_interactions(path)


def test_duplicates(tmp_path):
    frame = pd.DataFrame({"user": ["a", "a", "a", "b"], "item": ["x", "x", "y", "x"],
                          "rating": [1.0, 5.0, 3.0, 2.0], "timestamp": [10, 30, 20, 5]})
    with pytest.raises(InteractionsError, match=r"2 rows repeat a \(user, item\) pair \(rows 0, 1; .*'a'.*'x'.*"
                                                 r"duplicates='last'"):
        load_interactions(frame)

    def ax(d):
        r = d.ratings[(d.ratings["user"] == 0) & (d.ratings["item"] == 0)]
        assert len(r) == 1 and len(d.ratings) == 3
        return float(r["rating"].iloc[0]), int(r["timestamp"].iloc[0])

    assert ax(load_interactions(frame, duplicates="first")) == (1.0, 10)
    assert ax(load_interactions(frame, duplicates="last")) == (5.0, 30)
    assert ax(load_interactions(frame, duplicates="mean")) == (3.0, 30)
    with pytest.raises(ValueError, match="duplicates must be one of"):
        load_interactions(frame, duplicates="sum")


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No interactions file"):
        load_interactions(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(InteractionsError, match="unknown file type '.xlsx'"):
        load_interactions(tmp_path / "t.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InteractionsError, match="is empty"):
        load_interactions(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("user,item\n")
    with pytest.raises(InteractionsError, match="no rows"):
        load_interactions(tmp_path / "header.csv")


def test_the_source_is_never_modified(csv):
    before = csv.read_bytes()
    frame = pd.read_csv(csv, dtype=str)
    copy = frame.copy()
    load_interactions(csv, **COLUMNS)
    load_interactions(frame, **COLUMNS)
    assert csv.read_bytes() == before
    pd.testing.assert_frame_equal(frame, copy)


def test_explainers_and_models_run_on_own_data(csv):
    from xrec_helpers.explainers import JaccardExplainer
    from xrec_helpers.explainers.base import derive

    d = load_interactions(csv, **COLUMNS)
    e = JaccardExplainer(d.csr(), titles=d.titles()).explain(d.user_index("u2"), d.item_index("B-2"))
    assert "*M\\*A\\*S\\*H (1970)*" in e.text and np.isfinite(e.scores).all()
    assert e.text.startswith("Because you watched ")  # the default verb
    assert e.render(verb="bought").startswith("Because you bought *M\\*A\\*S\\*H (1970)*")
    e = JaccardExplainer(d.csr(), titles=d.titles()).explain(d.user_index("u2"), d.item_index("B-2"))
    e = derive(e, verb="bought")  # a domain verb kept with the (immutable) explanation
    assert e.render().startswith("Because you bought") and e.text.startswith("Because you bought")
    snake = JaccardExplainer(d.csr(), titles=d.titles()).explain(d.user_index("u2"), d.item_index("B-2"))
    assert "*Snake\\_Eyes*" in snake.render(), "an underscore is escaped too"
