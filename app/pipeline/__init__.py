"""The data pipeline: sources, retrieval, processing, aggregation and validation services.

Services add and mutate; the tasks in ``app.tasks.data_pipeline`` commit.
"""
