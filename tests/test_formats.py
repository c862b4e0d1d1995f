"""Benchmark readers on fixtures in the published formats (MMEB-v2 rows, video frame folders, BEIR
visual documents, MRMR), scored through the harness and checked against hand computations; and
one clear error per malformed file."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lame_tools.data.formats import (
    CandidateTask,
    CorpusTask,
    ImageStore,
    candidate_task_from_file,
    corpus_task_from_folder,
    mmeb_v2_tasks,
    mrmr_tasks,
    read_records,
)
from lame_tools.errors import InputError
from lame_tools.evaluate import evaluate_task

FIXTURES = Path(__file__).parent / "fixtures"
PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 60, 180),
}
COLOURS = list(PALETTE)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """The fixture tree copied to a temporary folder, with its images drawn (listed in images.json)."""
    root = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, root)
    for rel, colour in json.loads((FIXTURES / "images.json").read_text()).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (24, 24), PALETTE[colour])
        ImageDraw.Draw(image).ellipse((9, 9, 14, 14), fill=(255, 255, 255))
        image.save(path)
    return root


class ColourModel:
    """A transparent stand-in for a model: an input's embedding counts the colours it shows (the
    dominant colour of each image, the colour words of its text). Scores are then hand-computable."""

    class config:  # noqa: N801 - mimics LameModel.config
        embed_dim = len(COLOURS) + 1
        default_mode = "latent"

    def encode(self, images=None, texts=None, instruction=None, batch_size=32, mode=None):
        rows = []
        for image, text in zip(images, texts):
            vector = np.zeros(len(COLOURS) + 1)
            if image is not None:
                pixels = np.asarray(image).reshape(-1, 3).astype(float)
                mean = np.median(pixels, axis=0)
                vector[int(np.argmin([np.abs(mean - PALETTE[c]).sum() for c in COLOURS]))] += 1
            for word in (text or "").lower().replace("?", " ").split():
                if word in PALETTE:
                    vector[COLOURS.index(word)] += 1
            if not vector.any():
                vector[-1] = 1
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, np.float32)


def _tasks(sources) -> dict:
    return {s.name: s.load() for s in sources}


def test_mmeb_v2_layout_is_discovered(data):
    sources = mmeb_v2_tasks(data / "mmeb-v2")
    assert [(s.name, s.info["group"]) for s in sources] == [
        ("MSCOCO_t2i", "image"),
        ("OK-VQA", "image"),
        ("MSR-VTT", "video"),
        ("ViDoRe_arxivqa", "visdoc"),
    ]
    tasks = _tasks(sources)
    assert tasks["OK-VQA"].meta_task == "vqa" and tasks["MSCOCO_t2i"].meta_task == "retrieval"
    assert tasks["MSR-VTT"].meta_task == "retrieval" and tasks["ViDoRe_arxivqa"].meta_task == "vidore_v1"
    ok = tasks["OK-VQA"]
    assert isinstance(ok, CandidateTask) and len(ok.queries) == 3 and [len(c) for c in ok.candidates] == [3, 3, 3]
    assert ok.queries[0].instruction.startswith("Represent") and ok.queries[0].images[0].endswith("OK-VQA/red.png")
    t2i = tasks["MSCOCO_t2i"]
    assert t2i.candidates[0][0].instruction == "Represent the given image." and t2i.candidates[0][0].text == ""
    doc = tasks["ViDoRe_arxivqa"]
    assert isinstance(doc, CorpusTask) and doc.metric == "ndcg@5" and doc.doc_ids == ["d0", "d1", "d2", "d3"]
    assert doc.corpus[0].images[0].endswith("images/d0.png") and doc.corpus[3].images[0].endswith("pages/page3.png")
    assert doc.qrels == {"q0": {"d1": 1, "d3": 2}, "q1": {"d2": 1, "d0": 0}}
    assert doc.queries[0].instruction.startswith("Find a document image") and doc.corpus[0].instruction.startswith(
        "Understand"
    )
    assert mmeb_v2_tasks(data / "mmeb-v2", limit=1)[1].load().queries.__len__() == 1


def test_video_frames_are_sampled_uniformly(data):
    task = candidate_task_from_file(
        "MSR-VTT", data / "mmeb-v2/video-tasks/MSR-VTT.jsonl", [data / "mmeb-v2/video-tasks/frames"], "video", None, 4
    )
    frames = task.candidates[0][0].images
    assert [Path(f).name for f in frames] == ["frame_000.png", "frame_003.png", "frame_006.png", "frame_009.png"]
    assert len(task.candidates[0][1].images) == 4  # a 4-frame video keeps all four


def test_fixture_scores_match_hand_computation(data):
    model = ColourModel()
    scores = {name: evaluate_task(model, task) for name, task in _tasks(mmeb_v2_tasks(data / "mmeb-v2")).items()}
    # OK-VQA: row 1 hit; row 2 hit (the duplicate "green" negative merges into the positive);
    # row 3 miss (the listed positive "yellow" is not the image's colour).
    assert scores["OK-VQA"]["hit@1"] == pytest.approx(2 / 3) and scores["OK-VQA"]["n"] == 3
    # MSCOCO_t2i: row 2's two candidates tie at 0 -> the pessimistic order counts a miss.
    assert scores["MSCOCO_t2i"]["hit@1"] == 0.5
    # MSR-VTT: video0 is 7 red + 1 blue sampled frames, video1 all blue: both queries hit.
    assert scores["MSR-VTT"]["hit@1"] == 1.0
    # ViDoRe: q0 ties d1 (grade 1) and d3 (grade 2) -> d1 first: DCG 1 + 2/log2(3), IDCG 2 + 1/log2(3);
    # q1 finds d2 first -> 1; q2 has no qrels and is left out.
    q0 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    visdoc = scores["ViDoRe_arxivqa"]
    assert visdoc["ndcg@5"] == pytest.approx((q0 + 1) / 2) and visdoc["score"] == visdoc["ndcg@5"]
    assert visdoc["n"] == 2 and visdoc["n_unjudged"] == 1 and visdoc["recall@5"] == 1.0 and visdoc["hit@1"] == 1.0


def test_mrmr_metrics_per_task(data):
    sources = mrmr_tasks(data / "mrmr")
    assert [(s.name, s.info["metric"]) for s in sources] == [("knowledge", "ndcg@10"), ("negation", "hit@1")]
    tasks = _tasks(sources)
    assert len(tasks["knowledge"].corpus[1].images) == 2  # "image 1" and "image 2" of an interleaved document
    assert tasks["knowledge"].queries[0].instruction == ""
    instructed = mrmr_tasks(data / "mrmr", query_instruction="find the proof", doc_instruction="a proof")[0].load()
    assert instructed.queries[0].instruction == "find the proof" and instructed.corpus[0].instruction == "a proof"
    model = ColourModel()
    assert evaluate_task(model, tasks["knowledge"])["ndcg@10"] == pytest.approx(1.0)
    # Negation: "not red but green" is the positive for "a red sign"; a colour-counting model ranks
    # the plain "red" document first (miss), and gets "a blue sign" right: Hit@1 = 0.5.
    negation = evaluate_task(model, tasks["negation"])
    assert negation["metric"] == "hit@1" and negation["score"] == 0.5


def test_eval_cli_on_fixture_benchmarks(data, micro_model, tmp_path, capsys):
    from lame_tools.cli import main

    model_dir = tmp_path / "micro"
    micro_model.save_pretrained(model_dir)
    out = tmp_path / "mmeb.json"
    args = ["eval", "--model", str(model_dir), "--benchmark", "mmeb-v2", "--data", str(data / "mmeb-v2")]
    assert main([*args, "--out", str(out), "--no-progress", "--num-frames", "2"]) == 0
    summary = json.loads(out.read_text())
    assert set(summary["tasks"]) == {"OK-VQA", "MSCOCO_t2i", "MSR-VTT", "ViDoRe_arxivqa"}
    assert set(summary["groups"]) == {"image", "video", "visdoc"}
    assert summary["tasks"]["ViDoRe_arxivqa"]["metric"] == "ndcg@5"
    printed = capsys.readouterr().out
    assert "visdoc:" in printed and "all: overall" in printed
    assert main(["eval", "--model", str(model_dir), "--benchmark", "mrmr", "--out", str(tmp_path / "m.json")]) == 2
    assert "needs --data" in capsys.readouterr().err


# ---- one sentence per malformed file ------------------------------------------------------------


def _write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD_ROW = {"qry_inst": "q", "qry_text": "what", "qry_img_path": "", "tgt_text": ["a", "b"], "tgt_img_path": ["", ""]}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({k: v for k, v in GOOD_ROW.items() if k != "qry_text"}, "row 2 has no qry_text field"),
        ({**GOOD_ROW, "tgt_text": [], "tgt_img_path": []}, "row 2 has an empty candidate list"),
        ({**GOOD_ROW, "qry_img_path": "nope/missing.png"}, "row 2: the query image 'nope/missing.png' does not exist"),
        ({**GOOD_ROW, "tgt_text": ["a", "b", "c"]}, "row 2 has 3 tgt_text but 2 tgt_img_path entries"),
        ({**GOOD_ROW, "tgt_text": ["a", " "]}, "row 2: candidate 2 has neither text nor an image"),
        ("{not json", "line 2 is not valid JSON"),
    ],
)
def test_malformed_mmeb_rows_fail_with_one_sentence_naming_file_and_row(tmp_path, row, message):
    path = _write_rows(tmp_path / "Task.jsonl", [GOOD_ROW, row])
    with pytest.raises(InputError) as info:
        candidate_task_from_file("Task", path, [tmp_path], "image", None, 8)
    text = str(info.value)
    assert message in text and "Task.jsonl" in text and "\n" not in text


def test_malformed_beir_folders_fail_clearly(data, tmp_path):
    folder = tmp_path / "doc"
    shutil.copytree(data / "mmeb-v2/visdoc-tasks/ViDoRe_arxivqa", folder)
    (folder / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tghost\t1\n")
    with pytest.raises(InputError, match=r"test.tsv row 1 names the document 'ghost', which is not in the corpus"):
        corpus_task_from_folder(folder, "visdoc", "vidore_v1", "ndcg@5")
    (folder / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td1\n")
    with pytest.raises(InputError, match=r"test.tsv' line 2 has 2 columns but the header has 3"):
        corpus_task_from_folder(folder, "visdoc", "vidore_v1", "ndcg@5")
    shutil.rmtree(folder / "qrels")
    with pytest.raises(InputError, match="has no qrels file"):
        corpus_task_from_folder(folder, "visdoc", "vidore_v1", "ndcg@5")
    _write_rows(folder / "corpus.jsonl", [{"_id": "d0"}, {"text": "no id"}])
    (folder / "qrels.jsonl").write_text("")
    shutil.rmtree(folder / "images")  # d0 now has no text and no images/d0.png
    with pytest.raises(InputError, match=r"corpus.jsonl row 1 has neither text nor an image"):
        corpus_task_from_folder(folder, "visdoc", "vidore_v1", "ndcg@5")
    (folder / "images").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "images" / "d0.png")
    with pytest.raises(InputError, match=r"corpus.jsonl row 2 has no id field"):
        corpus_task_from_folder(folder, "visdoc", "vidore_v1", "ndcg@5")
    with pytest.raises(InputError, match="does not exist"):
        mrmr_tasks(tmp_path / "nowhere")


def test_empty_frame_folder_and_missing_benchmark_parts(tmp_path):
    (tmp_path / "video").mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        ImageStore([tmp_path]).resolve("video", "x.jsonl row 1:")
    with pytest.raises(InputError, match="No MMEB-v2 tasks"):
        mmeb_v2_tasks(tmp_path)


def test_mmeb_v1_image_placeholder_is_removed(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "q.png")
    row = {
        **GOOD_ROW,
        "qry_inst": "",
        "qry_text": "<|image_1|>\nRepresent the given image for classification",
        "qry_img_path": "q.png",
    }
    task = candidate_task_from_file("Task", _write_rows(tmp_path / "Task.jsonl", [row]), [tmp_path], "image", None, 8)
    assert task.queries[0].text == "Represent the given image for classification"
    assert task.queries[0].images == (str(tmp_path / "q.png"),)


def test_parquet_rows(tmp_path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path = tmp_path / "Task.parquet"
        path.write_bytes(b"PAR1")
        with pytest.raises(InputError, match="needs pyarrow"):
            read_records(path)
        return
    table = pa.Table.from_pylist([GOOD_ROW])
    pq.write_table(table, tmp_path / "Task.parquet")
    task = candidate_task_from_file("Task", tmp_path / "Task.parquet", [tmp_path], "image", None, 8)
    assert task.candidates[0][1].text == "b"


def test_query_ids_never_pick_up_page_images(data, tmp_path):
    # ViDoRe numbers queries and pages from 0 alike: page image images/0.png must not attach to query 0.
    folder = tmp_path / "doc"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "images" / "0.png")
    _write_rows(folder / "queries.jsonl", [{"query-id": 0, "query": "a chart"}])
    _write_rows(folder / "corpus.jsonl", [{"corpus-id": 0}])
    _write_rows(folder / "qrels.jsonl", [{"query-id": 0, "corpus-id": 0, "score": 1}])
    task = corpus_task_from_folder(folder, "visdoc", "vidore_v1", "ndcg@5")
    assert task.queries[0].images == () and task.corpus[0].images == (str(folder / "images" / "0.png"),)
