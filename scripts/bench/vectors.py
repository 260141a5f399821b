"""Top-k over the same float32 vectors and queries as `switchboard-bench vectors`, with faiss-cpu's
IndexFlatIP and with numpy, one thread, one query at a time; checks that Switchboard's ids equal
numpy's for every query. Usage: vectors.py generate N DIM QUERIES DIR | compare DIR K SWIFT_IDS"""
import os, sys, time, json


def generate(n, dim, queries, folder):
    import numpy as np
    rng = np.random.default_rng(20261205)
    # Embedding-like: unit vectors with a shared component, so scores are close together.
    base = rng.standard_normal(dim).astype(np.float32)
    vectors = (rng.standard_normal((n, dim)).astype(np.float32) + 0.5 * base).astype("<f4")
    qs = (rng.standard_normal((queries, dim)).astype(np.float32) + 0.5 * base).astype("<f4")
    vectors.tofile(os.path.join(folder, "vectors.f32"))
    qs.tofile(os.path.join(folder, "queries.f32"))


def stats(timings):
    timings = sorted(timings)
    return timings[len(timings) // 2], sum(timings) / len(timings), timings[min(len(timings) - 1, len(timings) * 99 // 100)]


def compare(folder, k, swift_ids_path):
    import numpy as np
    import faiss
    from threadpoolctl import threadpool_info, threadpool_limits
    faiss.omp_set_num_threads(1)
    dim = int(os.environ.get("DIM", "384"))
    vectors = np.fromfile(os.path.join(folder, "vectors.f32"), dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(os.path.join(folder, "queries.f32"), dtype="<f4").reshape(-1, dim)
    normalized = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(normalized, dtype=np.float32))
    index.search(qn[:1], k)  # warm-up
    faiss_times, faiss_ids = [], []
    for q in qn:
        begin = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), k)
        faiss_times.append((time.perf_counter() - begin) * 1e6)
        faiss_ids.append(list(ids[0]))

    numpy_times, numpy_ids = [], []
    with threadpool_limits(limits=1):
        blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
        normalized.dot(qn[0])
        for q in qn:
            begin = time.perf_counter()
            scores = normalized.dot(q)
            top = np.argpartition(-scores, k)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            numpy_times.append((time.perf_counter() - begin) * 1e6)
            numpy_ids.append(list(top))

    swift_ids = [list(map(int, line.split())) for line in open(swift_ids_path) if line.strip()]
    same_numpy = sum(1 for a, b in zip(swift_ids, numpy_ids) if a == b)
    same_set_numpy = sum(1 for a, b in zip(swift_ids, numpy_ids) if set(a) == set(b))
    same_faiss = sum(1 for a, b in zip(swift_ids, faiss_ids) if set(a) == set(b))
    print("faiss  vectors=%d dim=%d queries=%d p50_us=%.0f mean_us=%.0f p99_us=%.0f" % ((len(vectors), dim, len(qn)) + stats(faiss_times)))
    print("numpy  vectors=%d dim=%d queries=%d p50_us=%.0f mean_us=%.0f p99_us=%.0f blas=%s" % ((len(vectors), dim, len(qn)) + stats(numpy_times) + (blas,)))
    print("ids    same_order_as_numpy=%d/%d same_set_as_numpy=%d/%d same_set_as_faiss=%d/%d" % (
        same_numpy, len(qn), same_set_numpy, len(qn), same_faiss, len(qn)))
    print("versions numpy=%s faiss=%s" % (np.__version__, faiss.__version__))


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        compare(sys.argv[2], int(sys.argv[3]), sys.argv[4])
