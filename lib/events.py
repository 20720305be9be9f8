"""TensorBoard event files without TensorFlow.

clu's and TensorBoard's own writers open files through tf.io.gfile, which imports
TensorFlow (7 s of every start-up) when it is installed. An event file is only a
sequence of records of serialized `Event` protos; TensorBoard's RecordWriter frames and
checksums them onto a plain file.
"""

import os
import socket
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter


class EventWriter:
  """Scalars and images into `logdir/events.out.tfevents.*`."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f'events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}'
    self._file = open(os.path.join(logdir, name), 'wb')  # pylint: disable=consider-using-with
    self._records = RecordWriter(self._file)
    self._write(event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))

  def _write(self, event):
    self._records.write(event.SerializeToString())

  def write_scalars(self, step: int, scalars: dict):
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                summary=summary_pb2.Summary(value=values)))

  def write_image(self, step: int, tag: str, png: bytes, height: int, width: int):
    """A PNG (lib/pictures.png_bytes) under `tag`, shown in TensorBoard's Images tab."""
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=3,
                                      encoded_image_string=png)
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.
                                Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])))

  def flush(self):
    self._records.flush()

  def close(self):
    self._records.close()
