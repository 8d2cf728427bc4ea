"""Handing a worker's object-store pages back: its RSS drops, the objects it reads stay intact."""

import numpy as np


def test_release_drops_object_store_pages_and_keeps_the_data(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=0)
    class Reader:
        def read(self, refs):
            from skillit_ray.train.memory import release_object_store_pages, rss_mb

            arrays = ray.get(refs)  # zero-copy views into the shared-memory object store
            before_sum = [float(a.sum()) for a in arrays]  # touches every page
            mapped = rss_mb("RssShmem")
            spans = release_object_store_pages()
            released = rss_mb("RssShmem")
            after_sum = [float(a.sum()) for a in arrays]  # faults the pages back in
            return mapped, spans, released, before_sum, after_sum

    rng = np.random.default_rng(0)
    data = [rng.standard_normal(1_250_000) for _ in range(4)]  # 4 x 10 MB
    refs = [ray.put(a) for a in data]
    mapped, spans, released, before_sum, after_sum = ray.get(Reader.remote().read.remote(refs))
    assert spans >= 1
    assert mapped > 35  # MiB: the 38 MiB read are counted in the reader's RSS
    assert released < 2
    expected = [float(a.sum()) for a in data]
    assert before_sum == after_sum == expected
