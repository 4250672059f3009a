"""The stage-2 review widget saves every decision at once; reopening continues; reviews apply."""

from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from dicrepro.data.review import apply_reviews, load_decisions, review_widget


def tiny_pairs(n=4):
    rows = [{"id": f"e-{i}", "image": PILImage.new("RGB", (40, 30), (255, 255, 255 - 40 * i)),
             "target": f"expert text number {i}", "description": f"expert text number {i}",
             "source": "standin"} for i in range(n)]
    feats = Features({"id": Value("string"), "image": Image(), "target": Value("string"),
                      "description": Value("string"), "source": Value("string")})
    return Dataset.from_list(rows, features=feats)


def test_decisions_are_saved_immediately_and_applied(tmp_path):
    ds, reviews = tiny_pairs(), tmp_path / "reviews.jsonl"
    box = review_widget(ds, reviews)
    c = box.controls
    c["accept"].click()                      # e-0 accepted
    c["reject"].click()                      # e-1 rejected
    c["text"].value = "a corrected expert description"
    c["save"].click()                        # e-2 edited
    # saved on disk before anything else happens: closing the notebook now loses nothing
    assert {k: v["decision"] for k, v in load_decisions(reviews).items()} == {
        "e-0": "accept", "e-1": "reject", "e-2": "edit"}
    # reopening starts at the first unreviewed row
    again = review_widget(ds, reviews)
    assert again.controls["position"]["i"] == 3
    out = apply_reviews(ds, reviews)
    assert out["id"] == ["e-0", "e-2", "e-3"]
    assert out["target"][1] == "a corrected expert description"


def test_navigation_and_last_decision_wins(tmp_path):
    ds, reviews = tiny_pairs(), tmp_path / "r.jsonl"
    c = review_widget(ds, reviews).controls
    c["reject"].click()
    c["prev"].click()
    c["accept"].click()                      # e-0 changes its mind
    assert load_decisions(reviews)["e-0"]["decision"] == "accept"
    c["next"].click()
    c["next"].click()
    assert "4/4" in c["status"].value        # stops at the last row


def test_rejected_rows_stay_visible_with_their_state(tmp_path):
    ds, reviews = tiny_pairs(), tmp_path / "r.jsonl"
    c = review_widget(ds, reviews).controls
    c["reject"].click()                      # e-0 rejected, the widget moves on
    c["prev"].click()                        # ...and can come back to it
    assert "e-0" in c["status"].value and "rejected" in c["status"].value
    from dicrepro.data.review import review_table
    page = review_table(ds, reviews)         # what an executed notebook shows instead of the widget
    assert page.count("<tr>") == 4 and "rejected" in page and "not reviewed" in page


def test_keyboard_shortcuts(tmp_path):
    ds, reviews = tiny_pairs(), tmp_path / "r.jsonl"
    c = review_widget(ds, reviews).controls
    def press(key):  # the message ipyevents sends from the browser when a key goes down over the image
        c["keys"][0]._handle_mouse_msg(None, {"event": "keydown", "key": key}, [])
    for key in ("a", "r", "ArrowLeft", "ArrowLeft", "n"):
        press(key)
    assert {k: v["decision"] for k, v in load_decisions(reviews).items()} == {"e-0": "accept", "e-1": "reject"}
    assert c["position"]["i"] == 1
