# first: git worktree add --detach /tmp/s100-tip 15d9d27
OUT=${OUT:-/tmp/s100-out2}; mkdir -p $OUT

for r in 1 2; do
  for tree in /tmp/s100-tip /work/main; do
    label=$([ $tree = /tmp/s100-tip ] && echo tip || echo merged)
    (cd $tree && PYTHONPATH=$tree NUMBA_CACHE_DIR=/tmp/nbcache-$label /work/main/.venv/bin/python -m pytest $tree/bench/test_bench_scale_100k.py -q -p no:cacheprovider \
       -k kernel --benchmark-timer=time.process_time --benchmark-json=$OUT/$label-$r.json > $OUT/$label-$r.log 2>&1)
  done
done
echo done > $OUT/DONE
