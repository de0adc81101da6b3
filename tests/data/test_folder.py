"""A user's own data: sidecar captions, CSV and JSONL tables, and the report of what was wrong."""

import json

import pytest

from t2i_keras.data import folder
from tests.data_fixtures import jpeg, pixels, png, write


def kinds(source) -> dict[str, int]:
    return source.report.counts()


class TestSidecarFolder:
    def make(self, root):
        write(root / "roses" / "a.jpg", jpeg(pixels(0)))
        write(root / "roses" / "a.txt", "a red rose\n\n  a rose   in bloom \n")
        write(root / "roses" / "b.png", png(pixels(1)))
        write(root / "roses" / "b.txt", "a pink rose")
        write(root / "tulips" / "deep" / "c.jpg", jpeg(pixels(2)))
        write(root / "tulips" / "deep" / "c.txt", "a tulip")
        write(root / "top.jpg", jpeg(pixels(3)))
        write(root / "top.txt", "an image at the top level")
        write(root / ".hidden" / "x.jpg", jpeg(pixels(4)))  # hidden folders are not data

    def test_ids_groups_and_captions(self, tmp_path):
        self.make(tmp_path)
        source = folder.read_folder(tmp_path)
        got = {e.id: (e.group, e.captions) for e in source.examples}
        assert got == {
            "roses/a": ("roses", ["a red rose", "a rose in bloom"]),
            "roses/b": ("roses", ["a pink rose"]),
            "top": ("top", ["an image at the top level"]),
            "tulips/deep/c": ("tulips/deep", ["a tulip"]),
        }
        assert source.report.issues == []
        assert tmp_path / "roses" / "a.txt" in source.files

    def test_bad_data_is_counted_and_the_rest_kept(self, tmp_path):
        self.make(tmp_path)
        write(tmp_path / "roses" / "a.png", png(pixels(5)))  # same id as roses/a.jpg
        write(tmp_path / "roses" / "nocaption.jpg", jpeg(pixels(6)))
        write(tmp_path / "roses" / "orphan.txt", "an image that is not there")
        write(tmp_path / "roses" / "empty.jpg", jpeg(pixels(7)))
        write(tmp_path / "roses" / "empty.txt", "\n \n")
        write(tmp_path / "latin1.jpg", jpeg(pixels(8)))
        write(tmp_path / "latin1.txt", b"a caf\xe9 flower\xff\n")
        source = folder.read_folder(tmp_path)
        assert kinds(source) == {
            "duplicate_id": 1,
            "missing_captions": 1,
            "missing_image": 1,
            "empty_captions": 1,
            "invalid_utf8": 1,
        }
        by_id = {e.id: e for e in source.examples}
        assert by_id["roses/a"].image_path.suffix == ".jpg"  # the first one wins
        assert by_id["latin1"].captions == ["a caf\ufffd flower\ufffd"]
        assert "2 bytes are not UTF-8" in source.report.by_severity("warning")[0]["message"]
        assert "orphan" in " ".join(i["message"] for i in source.report.by_severity("error"))

    def test_max_captions_counts_what_it_drops(self, tmp_path):
        write(tmp_path / "a.jpg", jpeg(pixels(0)))
        write(tmp_path / "a.txt", "one\ntwo\nthree\n")
        source = folder.read_folder(tmp_path, max_captions=2)
        assert source.examples[0].captions == ["one", "two"]
        assert kinds(source) == {"extra_captions": 1}

    def test_nothing_usable_is_a_clear_error(self, tmp_path):
        write(tmp_path / "a.jpg", jpeg(pixels(0)))
        write(tmp_path / "b.txt", "captions without their image")
        with pytest.raises(ValueError, match="No usable example") as error:
            folder.read_folder(tmp_path)
        assert "missing_captions" in str(error.value) and "missing_image" in str(error.value)
        with pytest.raises(FileNotFoundError, match="neither a folder"):
            folder.read_folder(tmp_path / "absent")


class TestTables:
    def images(self, root):
        write(root / "img" / "cats" / "a.jpg", jpeg(pixels(0)))
        write(root / "img" / "b.jpg", jpeg(pixels(1)))

    def test_csv_rows_are_grouped_per_image(self, tmp_path):
        self.images(tmp_path)
        table = write(
            tmp_path / "captions.csv",
            b'\xef\xbb\xbfimage,caption\nimg/cats/a.jpg,"a cat, sitting"\nimg/b.jpg,a dog\n'
            b"img/cats/a.jpg,a grey cat\nimg/b.jpg,\nimg/missing.jpg,lost\n"
            b"img/b.jpg,caf\xe9\n",
        )
        source = folder.read_folder(table)
        got = {e.id: (e.group, e.captions) for e in source.examples}
        assert got == {
            "img/b": ("img", ["a dog", "caf\ufffd"]),
            "img/cats/a": ("img/cats", ["a cat, sitting", "a grey cat"]),
        }
        assert kinds(source) == {"empty_caption": 1, "missing_image": 1, "invalid_utf8": 1}
        assert source.files == [table]

    def test_csv_needs_its_header(self, tmp_path):
        table = write(tmp_path / "t.csv", "file,text\na.jpg,hello\n")
        with pytest.raises(ValueError, match="header row naming the columns 'image' and"):
            folder.read_folder(table)

    def test_jsonl_rows_and_malformed_lines(self, tmp_path):
        self.images(tmp_path)
        rows = [
            json.dumps({"image": "img/b.jpg", "captions": ["a dog", "a brown dog"]}),
            json.dumps({"image": "img/b.jpg", "caption": "a dog again"}),
            "{not json",
            json.dumps(["img/b.jpg", "a list"]),
            json.dumps({"image": "img/cats/a.jpg"}),
            "",
            json.dumps({"image": "img/cats/a.jpg", "caption": "a cat"}),
        ]
        source = folder.read_folder(write(tmp_path / "t.jsonl", "\n".join(rows)))
        got = {e.id: e.captions for e in source.examples}
        assert got == {"img/b": ["a dog", "a brown dog", "a dog again"], "img/cats/a": ["a cat"]}
        assert kinds(source) == {"malformed_row": 3}
        assert ":3: not JSON" in source.report.issues[0]["message"]
