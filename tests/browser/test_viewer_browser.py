"""The viewer as a user drives it: ns-viewer on a tiny trained run, headless Chromium, click an object.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (skipped when either is missing)
and Selenium. The run is trained for a few iterations with ``ns-train`` on CPU; set
``MASTSAM_VIEWER_TEST_RUN=<run>/config.yml`` to reuse an existing mastsam-splat run instead.
The final screenshot goes to ``$MASTSAM_VIEWER_SCREENSHOT`` (default: the test's temporary folder).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("MASTSAM_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MASTSAM_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
    "--force-device-scale-factor=1",
)
TRAIN_ITERATIONS = 20
BIN = Path(sys.executable).parent


def _require_browser() -> None:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("needs Debian's headless Chromium: apt-get install -y chromium chromium-driver")
    pytest.importorskip("selenium")
    pytest.importorskip("nerfstudio")


def _wait(condition: Callable[[], object], timeout: float, what: str, every: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False and not (isinstance(value, (list, tuple)) and not value):
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# fixtures: a trained run, ns-viewer on loopback, a browser


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """config.yml of a mastsam-splat run trained for a few iterations on a tiny synthetic scene."""
    _require_browser()
    reuse = os.environ.get("MASTSAM_VIEWER_TEST_RUN")
    if reuse:
        return Path(reuse).resolve()
    from mastsam_splat.synthetic import make_scene

    root = tmp_path_factory.mktemp("viewer_run")
    scene = make_scene(root / "scene", frames=12, width=64, height=48, seed=3, max_points=3000, progress=False)
    outputs = root / "outputs"
    command = [
        str(BIN / "ns-train"),
        "mastsam-splat",
        "--data",
        str(scene),
        "--output-dir",
        str(outputs),
        "--max-num-iterations",
        str(TRAIN_ITERATIONS),
        "--steps-per-save",
        str(TRAIN_ITERATIONS),
        "--steps-per-eval-image",
        "1000000",
        "--steps-per-eval-all-images",
        "1000000",
        "--vis",
        "tensorboard",
        "--machine.device-type",
        "cpu",
        "--pipeline.final-eval",
        "False",
    ]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    configs = sorted(outputs.glob("*/mastsam-splat/*/config.yml"))
    assert configs, f"ns-train wrote no config.yml under {outputs}"
    return configs[-1]


@pytest.fixture(scope="module")
def viewer_url(trained_run: Path, tmp_path_factory) -> Iterator[str]:
    """``ns-viewer`` on 127.0.0.1 at a free port, serving viser's web client."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("ns_viewer") / "ns-viewer.log"
    url = f"http://127.0.0.1:{port}/"
    command = [
        str(BIN / "ns-viewer"),
        "--load-config",
        str(trained_run),
        "--viewer.websocket-host",
        "127.0.0.1",
        "--viewer.websocket-port",
        str(port),
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=trained_run.parent, stdout=log, stderr=subprocess.STDOUT)

        def serving() -> bool:
            assert process.poll() is None, "ns-viewer exited:\n" + log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            _wait(serving, 300, "ns-viewer to serve its page", every=1.0)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture()
def browser() -> Iterator[object]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mastsam-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# page helpers


def _button(driver, text: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']")


def _labelled_input(driver, label: str):
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    return driver.find_element(By.ID, element.get_attribute("for"))


def _choose_output(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    _labelled_input(driver, "Output type").click()
    option = _wait(
        lambda: driver.find_elements(By.XPATH, f"//*[@role='option'][normalize-space()='{name}']"),
        20,
        f"the '{name}' output in the Output type list",
    )
    option[0].click()


def _canvas(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "canvas[data-engine]")


def _canvas_image(driver) -> np.ndarray:
    """The 3D canvas as shown on screen, RGB uint8 [H, W, 3]."""
    from PIL import Image

    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();", _canvas(driver))
    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
    top, left = int(np.ceil(rect["y"])), int(np.ceil(rect["x"]))
    return shot[top : top + int(rect["height"]) - 1, left : left + int(rect["width"]) - 1]


def _decode_ids(image: np.ndarray, num_ids: int) -> np.ndarray:
    """Object id [H, W] of each pixel of an instance-colour image: the nearest palette colour."""
    from mastsam_splat.tracker.outputs import id_colours

    palette = id_colours(np.arange(num_ids)).astype(np.int32)  # [K, 3]
    pixels = image.astype(np.int32)
    best = np.full(image.shape[:2], np.iinfo(np.int32).max)
    ids = np.zeros(image.shape[:2], dtype=np.int64)
    for instance_id, colour in enumerate(palette):
        distance = np.abs(pixels - colour).sum(axis=-1)  # [H, W]
        closer = distance < best
        best[closer], ids[closer] = distance[closer], instance_id
    return ids


def _largest_object(ids: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(x, y) deepest inside the largest single-id region (id > 0), and that region [H, W] bool.

    Regions inside the view (an object in front of the camera rather than the ground or a wall
    running off the edges) come first.
    """
    from scipy import ndimage

    objects = ids > 0
    objects[-80:, :80] = False  # the axes gizmo drawn over the bottom-left corner
    border = np.zeros_like(objects)
    border[[0, -1], :] = border[:, [0, -1]] = True
    best, best_key = None, (False, 0.0)
    for instance_id in np.unique(ids[objects]):
        labels, count = ndimage.label(objects & (ids == instance_id))
        for index in range(1, count + 1):
            region = labels == index
            key = (not bool((region & border).any()), float(region.sum()))
            if key > best_key:
                best, best_key = region, key
    assert best is not None, "the instance view shows no object"
    depth = ndimage.distance_transform_edt(best)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y), best


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------


def test_click_selects_highlights_and_exports_an_object(trained_run: Path, viewer_url: str, browser, tmp_path) -> None:
    from scipy import ndimage

    from mastsam_splat.io.ply import read_gaussians_ply
    from mastsam_splat.objects.run import load_checkpoint, open_run
    from nerfstudio_plugin.viewer import EXPORT_DIR, SELECTION_FILE

    run_dir = trained_run.parent
    selection_file = run_dir / SELECTION_FILE
    selection_file.unlink(missing_ok=True)
    run, _ = open_run(trained_run)
    num_ids = int(load_checkpoint(run.checkpoint)["pipeline"]["_model.instance_head.weight"].shape[0])
    screenshot = Path(os.environ.get("MASTSAM_VIEWER_SCREENSHOT", tmp_path / "viewer_selection.png"))
    screenshot.parent.mkdir(parents=True, exist_ok=True)

    driver = browser
    driver.get(viewer_url)
    _wait(lambda: driver.find_elements("xpath", "//button[normalize-space()='Select object (click)']"), 90, "the GUI")
    _button(driver, "Hide Train Cams").click()

    # Look at the instance colours and aim at the largest object.
    _choose_output(driver, "instance")
    instance_view = _wait(
        lambda: (img := _canvas_image(driver)) is not None and (img.max(axis=2) < 12).mean() > 0.2 and img,
        120,
        "the instance-colour render",
    )
    time.sleep(3.0)  # let the high-resolution render replace the low-resolution one
    instance_view = _canvas_image(driver)
    ids = _decode_ids(instance_view, num_ids)
    x, y, _ = _largest_object(ids)
    expected = int(ids[y, x])

    # Enter click mode and click the object.
    from selenium.webdriver.common.action_chains import ActionChains

    _button(driver, "Select object (click)").click()
    canvas = _canvas(driver)
    _wait(lambda: canvas.value_of_css_property("cursor") == "pointer", 30, "the viewer's click mode")
    width, height = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(canvas, x - width // 2, y - height // 2).click().perform()

    state = _wait(
        lambda: (s := _read_json(selection_file)) is not None and s.get("instance_id") is not None and s,
        120,
        f"{SELECTION_FILE} to record the selection",
    )
    assert state["instance_id"] == expected, (state, expected)
    assert state["num_gaussians"] > 0
    assert state["click"]["screen_pos"][0] == pytest.approx((x + 0.5) / width, abs=0.01)
    assert state["click"]["screen_pos"][1] == pytest.approx((y + 0.5) / height, abs=0.01)
    _wait(
        lambda: _labelled_input(driver, "Selected object id").get_attribute("value") == str(expected),
        30,
        "the id field",
    )

    # The next frame highlights: the selected object keeps its brightness (tinted), the rest dims.
    highlighted = _wait(
        lambda: (
            (img := _canvas_image(driver)) is not None
            and np.abs(img.astype(int) - instance_view.astype(int)).mean() > 3
            and img
        ),
        120,
        "the highlighted render",
    )
    time.sleep(3.0)
    highlighted = _canvas_image(driver)
    clicked = (slice(y - 2, y + 3), slice(x - 2, x + 3))
    assert highlighted[clicked].astype(float).mean() > 0.6 * instance_view[clicked].astype(float).mean()
    others = ~ndimage.binary_dilation(ids == expected, iterations=4)
    others[-80:, :80] = False
    assert instance_view[others].astype(float).mean() > 3
    assert highlighted[others].astype(float).mean() < 0.8 * instance_view[others].astype(float).mean()
    _choose_output(driver, "rgb")
    ActionChains(driver).move_to_element_with_offset(canvas, -width // 2 + 5, -height // 2 + 5).perform()
    time.sleep(4.0)
    driver.save_screenshot(str(screenshot))
    assert screenshot.is_file()

    # Export the selection from the viewer: exactly that object's Gaussians.
    _button(driver, "Export selection (.ply)").click()
    exported = run_dir / EXPORT_DIR / f"object_{expected:04d}.ply"
    _wait(exported.is_file, 60, f"the exported {exported.name}")
    gaussians = read_gaussians_ply(exported)
    assert len(gaussians) == state["num_gaussians"]
    assert set(np.unique(gaussians.instance_ids)) == {expected}
