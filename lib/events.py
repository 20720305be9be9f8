"""TensorBoard event files without TensorFlow.

clu's and TensorBoard's own writers open files through tf.io.gfile, which imports
TensorFlow (7 s of every start-up) when it is installed. An event file is only a
sequence of records of serialized `Event` protos; TensorBoard's RecordWriter frames and
checksums them onto a plain file.
"""

import io
import os
import socket
import time

from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter


class EventWriter:
  """Scalars and images into `logdir/events.out.tfevents.*`."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f'events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}'
    self._file = open(os.path.join(logdir, name), 'wb')  # pylint: disable=consider-using-with
    self._records = RecordWriter(self._file)
    self._write(file_version='brain.Event:2')

  def _write(self, step: int = 0, **fields):
    event = event_pb2.Event(wall_time=time.time(), step=int(step), **fields)
    self._records.write(event.SerializeToString())

  def write_scalars(self, step: int, scalars: dict):
    self._write(step, summary=summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]))

  def write_image(self, step: int, tag: str, image):
    """uint8 (H, W, 3) as a PNG under `tag`, shown in TensorBoard's Images tab."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG')
    png = summary_pb2.Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=3,
                                    encoded_image_string=buffer.getvalue())
    self._write(step, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, image=png)]))

  def flush(self):
    self._records.flush()
