"""The console's ways to a person's photos after enrollment, driven by AppTest against the
session's real Serve application: the person page's "Add a photo" and "Remove view", and the Enroll
page's offers for a name or a face already enrolled."""

from __future__ import annotations

import httpx

from conftest import AUTH, photo, photo_bytes, side_by_side
from console_pages import enroll, page


def test_add_a_photo_and_remove_a_view_on_the_person_page(console_env: httpx.Client):
    enrolled = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Photo Adder", "views": "left"},
        files={"photo": ("p.jpg", photo_bytes("Sarah_Jessica_Parker", 1), "image/jpeg")},
    ).json()
    person = enrolled["person_id"]
    try:
        at = page("person", {"id": str(person)})
        at.file_uploader[0].set_value(("p.jpg", photo_bytes("Sarah_Jessica_Parker", 2), "image/jpeg"))
        next(b for b in at.button if b.label == "Add photo").click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.success and "Added a photo: 1 embedding(s)" in at.success[0].value
        images = console_env.get(f"/v1/persons/{person}", headers=AUTH).json()["images"]
        assert [i["display_name"] for i in images] == ["original.jpg", "augmented_left_1.png", "original_2.jpg"]

        at.file_uploader[0].set_value(("p.jpg", photo_bytes("Sarah_Jessica_Parker", 2), "image/jpeg"))
        next(b for b in at.button if b.label == "Add photo").click().run()
        assert at.error and "already has this photo" in at.error[0].value and "photo\\_exists" in at.error[0].value

        group = side_by_side(photo("Sarah_Jessica_Parker", 3), photo("Tony_Stewart", 3))
        at.file_uploader[0].set_value(("g.jpg", group, "image/jpeg"))
        next(b for b in at.button if b.label == "Add photo").click().run()
        assert at.error and "multiple\\_faces" in at.error[0].value
        assert any("Crop the photo to their face" in c.value for c in at.caption)

        at.button(key=f"remove-{images[1]['id']}").click().run()
        assert not at.exception, at.exception
        assert at.success and "Removed the left view (1 embedding(s))" in at.success[0].value
        left = console_env.get(f"/v1/persons/{person}", headers=AUTH).json()
        assert [i["display_name"] for i in left["images"]] == ["original.jpg", "original_2.jpg"]
        assert left["embedding_counts"]["arcface-mbf-w600k"] == {"original": 2}
        grid = page("gallery")
        grid.text_input[0].input("Photo Adder").run()
        [row] = [r for r in grid.session_state["gallery_rows"] if r["id"] == person]  # the DuckDB view, re-read
        assert (row["images"], row["embeddings"]) == (2, 2)
    finally:
        console_env.delete(f"/v1/persons/{person}", headers=AUTH)


def test_enrolling_a_known_name_offers_to_add_the_photo_to_them(console_env: httpx.Client):
    ids = [
        console_env.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": name},
            files={"photo": ("p.jpg", photo_bytes(identity, 1), "image/jpeg")},
        ).json()["person_id"]
        for name, identity in (("Offer Tony", "Tony_Stewart"), ("Offer Valentino", "Valentino_Rossi"))
    ]
    try:
        at = enroll(page("enroll"), "Offer Tony", photo_bytes("Tony_Stewart", 2), ["left"])
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.warning and "Offer Tony is already enrolled" in at.warning[0].value
        next(b for b in at.button if b.label == "Add the photo to Offer Tony").click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.success and "Added a photo of Offer Tony as person" in at.success[0].value
        detail = console_env.get(f"/v1/persons/{ids[0]}", headers=AUTH).json()
        assert [i["display_name"] for i in detail["images"]][:2] == ["original.jpg", "original_2.jpg"]

        # a photo of someone else under Tony's name: offered, refused as Valentino's, added only when asked
        at = enroll(at, "Offer Tony", photo_bytes("Valentino_Rossi", 2), [])
        next(b for b in at.button if b.label == "Add the photo to Offer Tony").click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.warning and "identified as Offer Valentino" in at.warning[0].value

        def originals() -> list[str]:
            images = console_env.get(f"/v1/persons/{ids[0]}", headers=AUTH).json()["images"]
            return [i["display_name"] for i in images if i["source"] == "original"]

        assert originals() == ["original.jpg", "original_2.jpg"]  # nothing stored by the refusal
        next(b for b in at.button if b.label == "Add it to Offer Tony anyway").click().run()
        assert at.success and "Added a photo of Offer Tony" in at.success[0].value
        assert originals() == ["original.jpg", "original_2.jpg", "original_3.jpg"]
    finally:
        for person in ids:
            console_env.delete(f"/v1/persons/{person}", headers=AUTH)


def test_enrolling_a_known_face_under_a_new_name_offers_both_ways(console_env: httpx.Client):
    known = console_env.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Known Hugh"},
        files={"photo": ("p.jpg", photo_bytes("Hugh_Grant", 1), "image/jpeg")},
    ).json()["person_id"]
    made: list[int] = []
    try:
        at = enroll(page("enroll"), "Hugh Typo", photo_bytes("Hugh_Grant", 1), [])
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.warning and f"already enrolled as Known Hugh (person {known}" in at.warning[0].value
        assert "with this very photo" in at.warning[0].value  # so no offer to add it to them
        assert not [b for b in at.button if b.label.startswith("Add the photo to")]
        listed = console_env.get("/v1/persons", headers=AUTH, params={"prefix": "Hugh Typo"}).json()
        assert listed["total"] == 0  # nothing stored by the refusal
        next(b for b in at.button if b.label == "Enroll Hugh Typo as a new person").click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.success and "Enrolled Hugh Typo as person" in at.success[0].value
        made.append(at.session_state["last_enrollment"]["person_id"])

        # another photo of the face under a third name (it scores 0.9645 against photo 1, over
        # the threshold): offered to the Hugh it is identified as (both hold photo 1) and added there
        at = enroll(at, "Hugh Third", photo_bytes("Hugh_Grant", 2), [])
        assert at.warning and "already enrolled as" in at.warning[0].value, at.warning
        assert "very photo" not in at.warning[0].value
        target = next(b for b in at.button if b.label.startswith("Add the photo to "))
        owner = target.label.removeprefix("Add the photo to ")
        assert owner in ("Known Hugh", "Hugh Typo")
        target.click().run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.success and f"Added a photo of {owner}" in at.success[0].value
        assert console_env.get("/v1/persons", headers=AUTH, params={"prefix": "Hugh Third"}).json()["total"] == 0
    finally:
        for person in [known, *made]:
            console_env.delete(f"/v1/persons/{person}", headers=AUTH)
