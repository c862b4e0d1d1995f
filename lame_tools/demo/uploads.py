"""What the app keeps of users' own images: bounded per session and across all sessions, deleted with them.

Each session's additions live in its own `Gallery` (held in the session's Gradio state). `UserUploads`
stores an added image as a thumbnail of at most `USER_IMAGE_SIDE` pixels a side (in memory, for
embedding, and as a PNG in the session's own folder, for display), never as the decoded upload, and
caps the images stored by all live sessions together. A session's folder is deleted when the user
removes their additions, or when the session's gallery is dropped (Gradio forgets the session's
state): the gallery's finaliser deletes it (`weakref.finalize`, so no session needs to say goodbye).
"""

from __future__ import annotations

import shutil
import threading
import uuid
import weakref
from pathlib import Path

from PIL import Image

from lame_tools.demo.gallery import Gallery
from lame_tools.errors import InputError

# 512 px keeps every detail the Shapes model sees (it reads 112x112) and bounds an image at 0.8 MB.
USER_IMAGE_SIDE = 512
MAX_STORED_USER_IMAGES = 256
# Decoding an upload runs inside the app's single model slot: at most this many per call keeps another
# user's search from waiting behind one long batch of large images.
MAX_IMAGES_PER_ADD = 8


def thumbnail(image: Image.Image, side: int = USER_IMAGE_SIDE) -> Image.Image:
    """`image` shrunk (aspect kept) to at most `side` pixels a side; a copy either way."""
    small = image.copy()
    small.thumbnail((side, side), Image.BICUBIC)
    return small


class UserUploads:
    """The users' stored images: one folder per session gallery under `root`, and a global cap.

    Args:
        root: where the sessions' folders live (inside the app's work folder).
        max_images: how many images all live sessions may store together.
    """

    def __init__(self, root: Path, max_images: int = MAX_STORED_USER_IMAGES) -> None:
        self.root = Path(root)
        self.max_images = max_images
        self.lock = threading.Lock()
        self.galleries: weakref.WeakSet[Gallery] = weakref.WeakSet()
        self.folders: weakref.WeakKeyDictionary[Gallery, Path] = weakref.WeakKeyDictionary()
        self.finalizers: weakref.WeakKeyDictionary[Gallery, weakref.finalize] = weakref.WeakKeyDictionary()

    def stored(self) -> int:
        """Images stored by all live sessions."""
        return sum(g.count("image") for g in list(self.galleries))

    def check_room(self, n_new: int) -> None:
        """Refuse, in one sentence, `n_new` images more than the global cap allows."""
        if n_new and self.stored() + n_new > self.max_images:
            raise InputError(
                f"The app already stores {self.stored()} images added by all sessions (at most {self.max_images}); "
                "remove your additions or try again later."
            )

    def folder(self, gallery: Gallery) -> Path:
        """The session's own folder, created on first use and deleted when the gallery is dropped."""
        with self.lock:
            if gallery not in self.folders:
                folder = self.root / uuid.uuid4().hex
                folder.mkdir(parents=True, exist_ok=True)
                self.folders[gallery] = folder
                self.finalizers[gallery] = weakref.finalize(gallery, shutil.rmtree, str(folder), True)
                self.galleries.add(gallery)
            return self.folders[gallery]

    def store(self, gallery: Gallery, image: Image.Image, number: int) -> tuple[Image.Image, str]:
        """(the thumbnail to keep, the path of its PNG in the session's folder)."""
        small = thumbnail(image)
        path = self.folder(gallery) / f"{number:03d}_{uuid.uuid4().hex[:8]}.png"
        small.save(path)
        return small, str(path)

    def release(self, gallery: Gallery | None) -> None:
        """Delete a session's stored files now and stop counting its images."""
        if gallery is None:
            return
        with self.lock:
            finalizer = self.finalizers.pop(gallery, None)
            self.folders.pop(gallery, None)
            self.galleries.discard(gallery)
        if finalizer is not None:
            finalizer()  # deletes the folder, once
