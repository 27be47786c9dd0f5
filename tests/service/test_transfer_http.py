"""The whole gallery exported over HTTP as a zip that `manyangles import` takes."""

from __future__ import annotations

from pathlib import Path

from core.store.transfer import import_gallery


def test_the_api_exports_the_whole_gallery_as_an_importable_zip(api, tmp_path: Path):
    import io
    import zipfile

    from core.store.gallery import GalleryStore

    from conftest import AUTH

    assert api.get("/v1/export/gallery").status_code == 401
    response = api.get("/v1/export/gallery", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert "gallery/manifest.json" in names and "gallery/embeddings.parquet" in names
        archive.extractall(tmp_path / "unzipped")
    store = GalleryStore(tmp_path / "fresh")
    report = import_gallery(store, tmp_path / "unzipped" / "gallery")
    served = sorted(p["name"] for p in api.get("/v1/persons", headers=AUTH, params={"limit": 1000}).json()["persons"])
    assert sorted(p.name for p in store.list_persons()) == served and report.persons == len(served)
    assert not list(api.data_dir.glob("manyangles-export-*"))  # the temp folder is gone
