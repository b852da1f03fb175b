"""Export in headless Chromium: custom columns and a password, the downloaded zip opens with it; and a
snapshot downloaded from Settings restores through the upload form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pyzipper

from tests.e2e_helpers import (
    LoupeServer,
    go_to,
    open_app,
    requires_chromium,
    screenshot,
    wait_idle,
)

pytestmark = [pytest.mark.browser, requires_chromium]


def test_export_custom_columns_with_a_password(page: Any, demo_server: LoupeServer, artifacts: Path,
                                               tmp_path: Path) -> None:
    open_app(page, demo_server)
    go_to(page, "Settings")
    with page.expect_download() as one_click:  # the default preset, one click
        page.get_by_role("button", name="Download records").click()
    assert one_click.value.suggested_filename == "YouTube_spam_demo_refinery_all.json"
    default = json.loads(Path(one_click.value.path()).read_text(encoding="utf-8"))
    assert len(default) == 1956 and "__spam__WEAK_SUPERVISION__confidence" in default[0]
    page.get_by_role("button", name="Export…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Preset").wait_for()
    dialog.get_by_text("custom", exact=True).click()
    wait_idle(page)
    for name in ("AUTHOR", "DATE", "VIDEO"):
        dialog.get_by_role("button", name=f"Remove {name}").click()
        wait_idle(page)
    password = dialog.get_by_label("Password (optional)", exact=True)
    password.fill("open sesame")
    password.press("Enter")
    wait_idle(page)
    dialog.get_by_text("YouTube_spam_demo_refinery_all.json.zip").wait_for()
    screenshot(page, artifacts, "export-1-dialog-custom")
    with page.expect_download() as download_info:
        dialog.get_by_role("button", name="Download", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "YouTube_spam_demo_refinery_all.json.zip"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    with pyzipper.AESZipFile(path) as zf:
        (name,) = zf.namelist()
        with pytest.raises(RuntimeError):
            zf.read(name)
        zf.setpassword(b"open sesame")
        rows = json.loads(zf.read(name))
    assert name == "YouTube_spam_demo_refinery_all.json"
    assert len(rows) == 1956
    assert list(rows[0]) == ["CONTENT", "COMMENT_ID", "__spam__MANUAL", "__spam__WEAK_SUPERVISION",
                             "__spam__WEAK_SUPERVISION__confidence"]
    screenshot(page, artifacts, "export-2-downloaded")


def test_snapshot_from_settings_restores_through_the_upload(
    page: Any, demo_server: LoupeServer, artifacts: Path, tmp_path: Path
) -> None:
    open_app(page, demo_server)
    go_to(page, "Settings")
    page.get_by_label("Password (optional)", exact=True).fill("pw")
    page.get_by_label("Password (optional)", exact=True).press("Enter")
    wait_idle(page)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Create snapshot").click()
    path = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(path)
    assert path.name.startswith("YouTube_spam_demo_snapshot_") and path.suffix == ".zip"
    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(path)
    wait_idle(page)
    page.get_by_label("New project name (optional)", exact=True).fill("Restored demo")
    page.get_by_label("Password", exact=True).fill("wrong")
    page.get_by_label("Password", exact=True).press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Restore").click()
    page.get_by_text("wrong password").wait_for()
    page.get_by_label("Password", exact=True).fill("pw")
    page.get_by_label("Password", exact=True).press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Restore").click()
    page.get_by_text("restored project 'Restored demo'").wait_for()
    screenshot(page, artifacts, "export-3-snapshot-restored")
