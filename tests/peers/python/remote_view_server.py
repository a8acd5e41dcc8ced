#!/usr/bin/env python3
"""VTK Web image delivery (what vtk.js RemoteView speaks) on Kitware's Python
wslink 2.x, for benchmarking against examples/remote-view.

The same protocol and the same scene as the Rust example server:

  * views "1" and "2"; view id -1 / "-1" means "1";
  * viewport.image.push.observer.add/remove, viewport.image.push,
    viewport.image.push.original.size, viewport.image.push.quality,
    viewport.image.push.invalidate.cache, viewport.image.push.enabled,
    viewport.image.animation.fps.max/get, viewport.image.animation.start/stop,
    viewport.camera.reset, viewport.mouse.interaction, viewport.mouse.zoom.wheel;
  * frames published on "viewport.image.push.subscription" as
    {image: <JPEG bytes>, id, size, format: "jpeg", quality, memsize, mtime,
     workTime, stale: False, eventCount};
  * the scene of examples/remote-view/src/scene.rs (its module doc is the
    definition): a flat-shaded torus (64 x 32 quads, headlight) over a
    vertical gradient, orbit camera. Here numpy projects and culls, Pillow's
    ImageDraw fills the quads back to front (painter's algorithm instead of
    the Rust z-buffer, so edges may differ by a pixel) and Pillow encodes the
    JPEG.

Mouse and wheel events count in the view's eventCount (sent with each
frame); an event that leaves the picture as it was (a drag's first "down",
an "up", an EndMouseWheel) publishes nothing by itself, while observer.add,
push, original.size, invalidate.cache, enabled and camera.reset always
publish a frame.

Renders are coalesced: each view has one asyncio task that waits for its
"dirty" flag, renders in a worker thread (loop.run_in_executor) and then
publishes; a request arriving meanwhile only sets the flag again, so at most
one render per view is in flight and the latest state wins.

Started through wslink's own entry point (wslink.server.start), so wslink's
usual flags apply: --host --port (0 picks a free port) --timeout --authKey
--content DIR (serve a page) --ws-endpoint ... The WebSocket endpoint is
ws://HOST:PORT/ws and the default secret "wslink-secret". Once listening it
prints one line

    remote-view-server listening on http://HOST:PORT/ (ws://HOST:PORT/ws, wslink VERSION)

and then wslink's own ready text "wslink: Starting factory" (no newline).

Needs numpy and Pillow next to wslink (tests/peers/install.sh puts them into
target/peers/py2).
"""

import asyncio
import colorsys
import io
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

import wslink
from wslink import register as export_rpc
from wslink import server
from wslink.websocket import LinkProtocol, ServerProtocol

TOPIC = "viewport.image.push.subscription"
VIEW_IDS = ("1", "2")
DEFAULT_SIZE = (400, 400)
MAX_SIDE = 8192  # per side of a requested size
MAX_PIXELS = 3840 * 2160  # per rendered frame

# --------------------------------------------------------------------------
# The scene (as defined in examples/remote-view/src/scene.rs)

MAJOR_RADIUS = 1.0
MINOR_RADIUS = 0.35
MAJOR_STEPS = 64
MINOR_STEPS = 32
FOV_Y_DEG = 40.0
BG_TOP = np.array([20.0, 24.0, 38.0])
BG_BOTTOM = np.array([70.0, 80.0, 110.0])
DEFAULT_CAMERA = (30.0, 20.0, 3.5)  # azimuth, elevation (degrees), distance
# View "2" starts elsewhere, as in the Rust example; camera.reset gives the default.
VIEW_CAMERAS = {"1": DEFAULT_CAMERA, "2": (-60.0, 45.0, 3.5)}
DIST_MIN, DIST_MAX = 1.5, 20.0
EL_LIMIT = 89.0
NEAR = 0.05  # nearer than this along the view axis counts as behind the eye


def _torus():
    """Vertices (N, 3), quads (Q, 4) as vertex indices, per-quad normals
    (Q, 3) and colours (Q, 3) in 0..1, as examples/remote-view/src/scene.rs
    defines them."""
    u = np.arange(MAJOR_STEPS) * (2.0 * math.pi / MAJOR_STEPS)
    v = np.arange(MINOR_STEPS) * (2.0 * math.pi / MINOR_STEPS)
    uu, vv = np.meshgrid(u, v, indexing="ij")  # [i, j]
    ring = MAJOR_RADIUS + MINOR_RADIUS * np.cos(vv)
    verts = np.stack(
        [ring * np.cos(uu), ring * np.sin(uu), MINOR_RADIUS * np.sin(vv)], axis=-1
    ).reshape(-1, 3)

    i = np.arange(MAJOR_STEPS)[:, None]
    j = np.arange(MINOR_STEPS)[None, :]
    i1 = (i + 1) % MAJOR_STEPS
    j1 = (j + 1) % MINOR_STEPS

    def idx(a, b):
        return (a * MINOR_STEPS + b) + np.zeros((MAJOR_STEPS, MINOR_STEPS), dtype=int)

    # Corners (i, j) (i+1, j) (i+1, j+1) (i, j+1): u then v, counter-clockwise
    # seen from outside.
    quads = np.stack([idx(i, j), idx(i1, j), idx(i1, j1), idx(i, j1)], axis=-1).reshape(
        -1, 4
    )

    # Per face: the torus's exact normal and the colour at the quad centre
    # (u_c, v_c) = (2pi (i + 0.5) / 64, 2pi (j + 0.5) / 32); hue = u_c / 2pi.
    uc = (np.arange(MAJOR_STEPS) + 0.5) * (2.0 * math.pi / MAJOR_STEPS)
    vc = (np.arange(MINOR_STEPS) + 0.5) * (2.0 * math.pi / MINOR_STEPS)
    ucc, vcc = np.meshgrid(uc, vc, indexing="ij")
    normals = np.stack(
        [np.cos(vcc) * np.cos(ucc), np.cos(vcc) * np.sin(ucc), np.sin(vcc)], axis=-1
    ).reshape(-1, 3)
    colours = np.empty((MAJOR_STEPS, MINOR_STEPS, 3))
    for a in range(MAJOR_STEPS):
        colours[a, :] = colorsys.hsv_to_rgb(uc[a] / (2.0 * math.pi), 0.65, 1.0)
    return verts, quads, normals, colours.reshape(-1, 3)


VERTS, QUADS, NORMALS, COLOURS = _torus()
CENTROIDS = VERTS[QUADS].mean(axis=1)

_gradients = {}


def _round_half_up(x):
    """Rounding of the Rust scene (half away from zero for x >= 0)."""
    return np.floor(x + 0.5)


def _background(width, height):
    key = (width, height)
    img = _gradients.get(key)
    if img is None:
        t = np.arange(height, dtype=float) / max(height - 1, 1)
        rows = BG_TOP[None, :] + (BG_BOTTOM - BG_TOP)[None, :] * t[:, None]
        rows = _round_half_up(rows).astype(np.uint8)
        pixels = np.repeat(rows[:, None, :], width, axis=1)
        img = Image.fromarray(pixels, "RGB")
        if len(_gradients) > 8:
            _gradients.clear()
        _gradients[key] = img
    return img.copy()


def towards_eye(azimuth, elevation):
    """Unit vector from the origin toward the eye."""
    az = math.radians(azimuth)
    el = math.radians(elevation)
    return np.array(
        [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
    )


def render_jpeg(width, height, azimuth, elevation, distance, quality):
    """Draws the scene and returns the JPEG bytes."""
    light = towards_eye(azimuth, elevation)  # the headlight, origin -> eye
    eye = light * distance
    forward = -light  # looking at the origin, +Z up
    az = math.radians(azimuth)
    right = np.array([-math.sin(az), math.cos(az), 0.0])  # forward x +Z, normalised
    up = np.cross(right, forward)

    # Perspective projection to pixels (y down), 40 degrees vertical field.
    rel = VERTS - eye[None, :]
    cz = rel @ forward
    in_front = cz > NEAR
    inv_z = 1.0 / np.where(in_front, cz, 1.0)
    pixels_per_unit = (1.0 / math.tan(math.radians(FOV_Y_DEG) / 2.0)) * height * 0.5
    px = width * 0.5 + (rel @ right) * inv_z * pixels_per_unit
    py = height * 0.5 - (rel @ up) * inv_z * pixels_per_unit

    # Quads with a corner behind the near plane are dropped; back faces
    # (clockwise on screen, y down: positive shoelace sum) are culled.
    qx = px[QUADS]
    qy = py[QUADS]
    area = np.sum(qx * np.roll(qy, -1, axis=1) - np.roll(qx, -1, axis=1) * qy, axis=1)
    keep = np.nonzero(np.all(in_front[QUADS], axis=1) & (area < 0.0))[0]

    # Painter's algorithm: farthest quad centre first.
    depth = (CENTROIDS[keep] - eye[None, :]) @ forward
    order = keep[np.argsort(-depth, kind="stable")]

    lambert = np.maximum(NORMALS[order] @ light, 0.0)
    shade = COLOURS[order] * (0.25 + 0.75 * lambert)[:, None]
    fills = [tuple(c) for c in np.clip(_round_half_up(shade * 255.0), 0, 255).astype(np.uint8).tolist()]
    xs = qx[order].tolist()
    ys = qy[order].tolist()

    img = _background(width, height)
    draw = ImageDraw.Draw(img)
    for fill, x4, y4 in zip(fills, xs, ys):
        draw.polygon(list(zip(x4, y4)), fill=fill)

    out = io.BytesIO()
    img.save(out, format="JPEG", quality=int(quality))
    return out.getvalue()


# --------------------------------------------------------------------------
# Views


def clamp(value, low, high):
    return max(low, min(high, value))


def number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{what} must be a number, got {value!r}"
        raise TypeError(msg)
    if not math.isfinite(value):
        msg = f"{what} must be finite, got {value!r}"
        raise ValueError(msg)
    return value


class View:
    def __init__(self, view_id, camera):
        self.id = view_id
        self.default_camera = camera
        self.original_size = list(DEFAULT_SIZE)
        self.quality = 100
        self.ratio = 1.0
        self.enabled = True
        self.observers = {}  # client id -> count
        self.azimuth, self.elevation, self.distance = camera
        self.event_count = 0  # mouse and wheel events applied
        self.mtime = 0  # frames published
        self.last = None  # (x, y) of the previous "down" of a drag
        self.force = False  # publish the next frame even if nothing changed
        self.published = None  # what the last frame showed
        self.dirty = None  # asyncio.Event, created on the running loop
        self.task = None

    def render_size(self):
        """The requested size times the ratio, scaled down to MAX_PIXELS."""
        w, h = (max(1.0, math.floor(s * self.ratio + 0.5)) for s in self.original_size)
        if w * h > MAX_PIXELS:
            shrink = math.sqrt(MAX_PIXELS / (w * h))
            w, h = max(1.0, math.floor(w * shrink)), max(1.0, math.floor(h * shrink))
        return [int(w), int(h)]

    def set_size(self, width, height):
        width = int(number(width, "width"))
        height = int(number(height, "height"))
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            msg = f"size {width}x{height} out of range (1..{MAX_SIDE} each)"
            raise ValueError(msg)
        self.original_size = [width, height]

    def observer_count(self):
        return sum(self.observers.values())

    def orbit(self, dx, dy):
        self.azimuth -= dx * 180.0
        self.elevation = clamp(self.elevation - dy * 180.0, -EL_LIMIT, EL_LIMIT)

    def zoom(self, factor):
        if factor > 0.0:
            self.distance = clamp(self.distance * factor, DIST_MIN, DIST_MAX)


def resolve_view_id(view_id):
    key = str(view_id).strip()
    if key == "-1":
        return "1"
    if key in VIEW_IDS:
        return key
    msg = f"unknown view id {view_id!r}: the views are '1' and '2' (-1 means '1')"
    raise ValueError(msg)


class RemoteViewApi(LinkProtocol):
    """The viewport.* methods of VTK Web's image delivery."""

    def __init__(self):
        super().__init__()
        self.views = {v: View(v, VIEW_CAMERAS[v]) for v in VIEW_IDS}
        self.max_fps = 30
        self.executor = ThreadPoolExecutor(
            max_workers=len(VIEW_IDS), thread_name_prefix="render"
        )

    # -- helpers -------------------------------------------------------------

    def _view(self, view_id):
        return self.views[resolve_view_id(view_id)]

    def _client_id(self):
        # wslink records the caller on its web app just before each RPC call;
        # RemoteViewServer.set_server keeps that web app.
        web_server = getattr(self.coreServer, "web_server", None)
        return getattr(web_server, "last_active_client_id", None)

    def request_render(self, view, force=False):
        """Marks the view dirty (and, with force, due for a frame even if
        the picture did not change); its render task picks that up."""
        view.force = view.force or force
        if view.task is None:
            view.dirty = asyncio.Event()
            view.task = asyncio.get_running_loop().create_task(self._render_loop(view))
        view.dirty.set()

    async def _render_loop(self, view):
        loop = asyncio.get_running_loop()
        while True:
            await view.dirty.wait()
            view.dirty.clear()
            if not view.enabled or view.observer_count() == 0:
                continue
            width, height = view.render_size()
            quality = int(view.quality)
            camera = (view.azimuth, view.elevation, view.distance)
            showing = (camera, width, height, quality)
            # Like the Rust server: events that leave the picture as it was
            # (a drag's first "down", an "up") publish nothing by themselves.
            if not view.force and showing == view.published:
                continue
            view.force = False
            event_count = view.event_count
            started = time.perf_counter()
            try:
                jpeg = await loop.run_in_executor(
                    self.executor, render_jpeg, width, height, *camera, quality
                )
            except Exception as error:  # keep the loop alive
                print(f"remote-view-server: render failed: {error!r}", file=sys.stderr)
                continue
            work_ms = (time.perf_counter() - started) * 1000.0
            view.mtime += 1
            view.published = showing
            self.publish(
                TOPIC,
                {
                    "image": jpeg,
                    "id": view.id,
                    "size": [width, height],
                    "format": "jpeg",
                    "quality": quality,
                    "memsize": len(jpeg),
                    "mtime": view.mtime,
                    "workTime": work_ms,
                    "stale": False,
                    "eventCount": event_count,
                },
            )

    def onClose(self, client_id):
        for view in self.views.values():
            view.observers.pop(client_id, None)

    # -- image delivery ------------------------------------------------------

    @export_rpc("viewport.image.push.observer.add")
    def observer_add(self, view_id=-1):
        view = self._view(view_id)
        client = self._client_id()
        view.observers[client] = view.observers.get(client, 0) + 1
        self.request_render(view, force=True)
        return {"success": True, "viewId": view.id}

    @export_rpc("viewport.image.push.observer.remove")
    def observer_remove(self, view_id=-1):
        view = self._view(view_id)
        client = self._client_id()
        if view.observers.get(client, 0) > 0:
            view.observers[client] -= 1
            if view.observers[client] == 0:
                del view.observers[client]
        return {"result": "success"}

    @export_rpc("viewport.image.push")
    def image_push(self, options=None):
        options = options or {}
        view = self._view(options.get("view", -1))
        size = options.get("size")
        if size is not None:
            if not isinstance(size, (list, tuple)) or len(size) != 2:
                msg = f"size must be [width, height], got {size!r}"
                raise ValueError(msg)
            view.set_size(*size)
        self.request_render(view, force=True)
        return {"result": "success"}

    @export_rpc("viewport.image.push.original.size")
    def original_size(self, view_id, width, height):
        view = self._view(view_id)
        view.set_size(width, height)
        self.request_render(view, force=True)
        return {"result": "success"}

    @export_rpc("viewport.image.push.quality")
    def set_quality(self, view_id, quality, ratio=1):
        view = self._view(view_id)
        quality = number(quality, "quality")
        ratio = number(ratio, "ratio")
        if not 0 <= quality <= 100:
            msg = f"quality must be in 0..100, got {quality!r}"
            raise ValueError(msg)
        if not 0.0 < ratio <= 4.0:
            msg = f"ratio must be in (0, 4], got {ratio!r}"
            raise ValueError(msg)
        view.quality = int(quality)
        view.ratio = float(ratio)
        return {"result": "success"}

    @export_rpc("viewport.image.push.invalidate.cache")
    def invalidate_cache(self, view_id=-1):
        self.request_render(self._view(view_id), force=True)
        return {"result": "success"}

    @export_rpc("viewport.image.push.enabled")
    def set_enabled(self, view_id, enabled):
        view = self._view(view_id)
        view.enabled = bool(enabled)
        if view.enabled:
            self.request_render(view, force=True)
        return {"result": "success"}

    @export_rpc("viewport.image.animation.fps.max")
    def set_max_fps(self, fps=30):
        self.max_fps = number(fps, "fps")
        return {"result": "success"}

    @export_rpc("viewport.image.animation.fps.get")
    def get_fps(self):
        return self.max_fps

    # Accepted and ignored: this peer does not animate.
    @export_rpc("viewport.image.animation.start")
    def animation_start(self, view_id=-1):
        self._view(view_id)
        return {"result": "success"}

    @export_rpc("viewport.image.animation.stop")
    def animation_stop(self, view_id=-1):
        self._view(view_id)
        return {"result": "success"}

    @export_rpc("viewport.camera.reset")
    def camera_reset(self, view_id=-1):
        view = self._view(view_id)
        view.azimuth, view.elevation, view.distance = DEFAULT_CAMERA
        self.request_render(view, force=True)
        return {"result": "success"}

    # -- interaction ---------------------------------------------------------

    @export_rpc("viewport.mouse.interaction")
    def mouse_interaction(self, event):
        if not isinstance(event, dict):
            msg = f"a mouse event is an object, got {event!r}"
            raise TypeError(msg)
        view = self._view(event.get("view", -1))
        action = event.get("action")
        if action == "down":
            # vtk.js sends "down" for the press and for every move while a
            # button is held: the press only records where the drag starts.
            x = float(number(event.get("x"), "x"))
            y = float(number(event.get("y"), "y"))
            if view.last is not None:
                dx, dy = x - view.last[0], y - view.last[1]
                if event.get("buttonRight") or (event.get("buttonLeft") and event.get("ctrlKey")):
                    view.zoom(1.0 + dy * 2.0)
                elif event.get("buttonLeft"):
                    view.orbit(dx, dy)
            view.last = (x, y)
        else:
            view.last = None
        view.event_count += 1
        self.request_render(view)
        return {"result": "success"}

    @export_rpc("viewport.mouse.zoom.wheel")
    def mouse_wheel(self, event):
        if not isinstance(event, dict):
            msg = f"a wheel event is an object, got {event!r}"
            raise TypeError(msg)
        view = self._view(event.get("view", -1))
        if event.get("type") in ("StartMouseWheel", "MouseWheel"):
            view.zoom(1.1 ** float(number(event.get("spinY", 0.0), "spinY")))
        view.event_count += 1
        self.request_render(view)
        return {"result": "success"}


class RemoteViewServer(ServerProtocol):
    secret_from_options = "wslink-secret"
    options = None

    @staticmethod
    def configure(options):
        # Called by wslink.server.start with the parsed command line.
        RemoteViewServer.secret_from_options = options.authKey
        RemoteViewServer.options = options

    def initialize(self):
        self.web_server = None
        self.registerLinkProtocol(RemoteViewApi())
        self.updateSecret(RemoteViewServer.secret_from_options)

    def set_server(self, web_server):
        # Called by wslink.server.start_webserver with the aiohttp web app.
        self.web_server = web_server

    def port_callback(self, port):
        options = RemoteViewServer.options
        host = getattr(options, "host", "localhost")
        endpoint = getattr(options, "ws", "ws")
        print(
            f"remote-view-server listening on http://{host}:{port}/ "
            f"(ws://{host}:{port}/{endpoint}, wslink {wslink.__version__})",
            flush=True,
        )


def main(argv=None):
    server.start(
        argv,
        protocol=RemoteViewServer,
        description="VTK Web image delivery (vtk.js RemoteView) on Python wslink",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
