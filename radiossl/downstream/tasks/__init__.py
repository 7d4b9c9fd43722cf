"""Built-in downstream tasks (``radiossl.tasks`` entry points): ``brats``, ``lits``, ``nnunet``."""

from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig, get_task_class

__all__ = ["Region", "SegmentationTask", "TaskConfig", "get_task_class"]
