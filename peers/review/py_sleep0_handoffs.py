#!/usr/bin/python3
"""peers/review/py_sleep0_handoffs.py - review probe (not in make test): how often does
Python's time.sleep(0) (the thread "switch" of peers/python/seed.py) actually hand the
GIL to the other thread? Two threads x 10,000 sleep(0); counts changes of the running
thread in the order of completed calls.
    taskset -c 0 /usr/bin/python3 peers/review/py_sleep0_handoffs.py
"""
import threading, time, os, sys
def ctx():
    v=n=0
    for t in os.listdir('/proc/self/task'):
        for l in open(f'/proc/self/task/{t}/status'):
            if l.startswith('voluntary_ctxt_switches'): v+=int(l.split()[1])
            if l.startswith('nonvoluntary_ctxt_switches'): n+=int(l.split()[1])
    return v,n
M=10000
res={}
def unit(k):
    me = threading.get_ident()
    last=None
    for _ in range(M):
        time.sleep(0)
        order.append(k)
order=[]
c0=ctx()
ths=[threading.Thread(target=unit,args=(k,)) for k in range(2)]
t0=time.monotonic()
for t in ths: t.start()
# sample ctx before threads exit is hard; count handoffs via order list instead
for t in ths: t.join()
dt=time.monotonic()-t0
handoffs=sum(1 for a,b in zip(order,order[1:]) if a!=b)
print(f"pinned={len(os.sched_getaffinity(0))==1} sleep0 calls={2*M} us/call={dt*1e6/(2*M):.2f} handoffs between the 2 threads={handoffs} ({handoffs/(2*M):.3f} per call)")
